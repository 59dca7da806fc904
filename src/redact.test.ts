import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { REDACTED, redactUrl } from './redact.js';

describe('redactUrl', () => {
  it('hides userinfo and the values of secret-named query parameters, keeping the rest as written', () => {
    assert.equal(
      redactUrl('https://user:pass@hooks.example.com/in?token=abc&team=a&X-Api-Key=k#top'),
      `https://${REDACTED}@hooks.example.com/in?token=${REDACTED}&team=a&X-Api-Key=${REDACTED}#top`,
    );
    assert.equal(
      redactUrl('https://h.example.com/p?ACCESS_TOKEN=1&client_secret=2&passwd=3&apikey=4&sig=5&monkey=6'),
      `https://h.example.com/p?ACCESS_TOKEN=${REDACTED}&client_secret=${REDACTED}&passwd=${REDACTED}&apikey=${REDACTED}&sig=${REDACTED}&monkey=6`,
    );
    assert.equal(redactUrl('postgres://herald:s3cret@db:5432/shop'), `postgres://${REDACTED}@db:5432/shop`);
    assert.equal(redactUrl('https://example.com/hook'), 'https://example.com/hook');
    assert.equal(redactUrl('not a url'), 'not a url');
  });

  it('redacts URLs inside a message, and malformed ones too', () => {
    assert.equal(
      redactUrl('connect to smtp://bob:hunter2@mail:25 failed'),
      `connect to smtp://${REDACTED}@mail:25 failed`,
    );
    assert.doesNotMatch(redactUrl('not a url://u:s3cret@x'), /s3cret/);
    assert.doesNotMatch(redactUrl('http://u:s3cret@[::1'), /s3cret/);
  });

  it('property: no credential survives, wherever in the URL it sits and however its name is spelled', () => {
    const secret = fc.stringMatching(/^[A-Za-z0-9]{8,16}$/).map((s) => `S3CR3T${s}`);
    const paramName = fc.constantFrom(
      'token',
      'key',
      'secret',
      'signature',
      'sig',
      'password',
      'passwd',
      'api_key',
      'apikey',
      'API-KEY',
      'x-api-key',
      'access_token',
      'auth',
      'client_secret',
      'Token',
    );
    const plain = fc.stringMatching(/^[a-z]{1,6}$/).filter((name) => !['key', 'sig', 'auth'].includes(name));
    const url = fc
      .tuple(
        fc.constantFrom('http', 'https', 'smtp', 'postgres'),
        fc.option(fc.tuple(fc.stringMatching(/^[a-z]{1,6}$/), secret)),
        fc.array(fc.tuple(plain, plain), { maxLength: 3 }),
        fc.option(fc.tuple(paramName, secret)),
      )
      .map(([scheme, userinfo, params, secretParam]) => {
        const pairs = params.map(([k, v]) => `${k}=${v}`);
        if (secretParam) pairs.splice(pairs.length >> 1, 0, `${secretParam[0]}=${secretParam[1]}`);
        const auth = userinfo ? `${userinfo[0]}:${userinfo[1]}@` : '';
        return `${scheme}://${auth}host.example.com:8080/path${pairs.length ? `?${pairs.join('&')}` : ''}`;
      });
    fc.assert(
      fc.property(url, (u) => {
        const out = redactUrl(u);
        assert.ok(!out.includes('S3CR3T'), `leaked: ${out}`);
        assert.ok(out.includes('host.example.com:8080/path'));
      }),
      { numRuns: 500 },
    );
  });
});
