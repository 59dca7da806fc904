import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checkBeforeConnect, hostAllowed, nonPublicKind } from './outbound.js';

const v4 = (a: number, b: number, c: number, d: number) => `${a}.${b}.${c}.${d}`;
const hex = (a: number, b: number) => ((a << 8) | b).toString(16);

describe('outbound address policy', () => {
  it('public addresses pass; IPv6 forms embedding a private IPv4 address do not', () => {
    for (const address of [
      '8.8.8.8',
      '1.1.1.1',
      '2606:4700:4700::1111',
      '::ffff:8.8.8.8',
      '64:ff9b::808:808',
    ])
      assert.equal(nonPublicKind(address), null, address);
    assert.equal(nonPublicKind('::ffff:10.0.0.1'), 'private');
    assert.equal(nonPublicKind('2002:c0a8:101::1'), 'private');
    assert.equal(nonPublicKind('[::1]'), 'loopback');
    assert.equal(nonPublicKind('fe80::1%eth0'), 'link-local');
    assert.equal(nonPublicKind('not an address'), 'reserved');
  });

  it('property: every address of a blocked IPv4 range is refused, as written and in its IPv6 forms', () => {
    const byte = fc.integer({ min: 0, max: 255 });
    const ranges = fc.oneof(
      fc.tuple(byte, byte, byte).map(([b, c, d]) => ['loopback', [127, b, c, d]] as const),
      fc.tuple(byte, byte, byte).map(([b, c, d]) => ['private', [10, b, c, d]] as const),
      fc
        .tuple(fc.integer({ min: 16, max: 31 }), byte, byte)
        .map(([b, c, d]) => ['private', [172, b, c, d]] as const),
      fc.tuple(byte, byte).map(([c, d]) => ['private', [192, 168, c, d]] as const),
      fc.tuple(byte, byte).map(([c, d]) => ['link-local', [169, 254, c, d]] as const),
      fc
        .tuple(fc.integer({ min: 64, max: 127 }), byte, byte)
        .map(([b, c, d]) => ['shared (CGNAT)', [100, b, c, d]] as const),
      fc
        .tuple(fc.integer({ min: 224, max: 239 }), byte, byte, byte)
        .map(([a, b, c, d]) => ['multicast', [a, b, c, d]] as const),
    );
    fc.assert(
      fc.property(ranges, ([kind, [a, b, c, d]]) => {
        for (const form of [
          v4(a, b, c, d),
          `::ffff:${v4(a, b, c, d)}`,
          `::ffff:${hex(a, b)}:${hex(c, d)}`,
          `64:ff9b::${hex(a, b)}:${hex(c, d)}`,
        ])
          assert.equal(nonPublicKind(form), kind, form);
        // The WHATWG parser turns decimal, hex and octal spellings into the dotted form checked here.
        const decimal = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
        for (const spelling of [
          `${decimal}`,
          `0x${decimal.toString(16)}`,
          `0${a.toString(8)}.${b}.${c}.${d}`,
        ])
          assert.ok(checkBeforeConnect(new URL(`http://${spelling}/`)), spelling);
      }),
      { numRuns: 300 },
    );
  });

  it('allowHosts matches names exactly or by *. suffix, in any case, with or without a trailing dot', () => {
    const policy = { allowHosts: ['Hooks.Internal', '*.corp.example', '::1'], allowPrivateNetworks: false };
    assert.ok(hostAllowed('hooks.internal', policy));
    assert.ok(hostAllowed('hooks.internal.', policy));
    assert.ok(hostAllowed('a.b.corp.example', policy));
    assert.ok(hostAllowed('[::1]', policy));
    assert.ok(!hostAllowed('corp.example', policy));
    assert.ok(!hostAllowed('evilcorp.example', policy));
    assert.ok(!hostAllowed('hooks.internal.evil.example', policy));
    assert.ok(hostAllowed('anything', { allowHosts: [], allowPrivateNetworks: true }));
  });
});
