import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HeraldError } from '../errors.js';
import { ingestAuthSchema } from '../signing/ingest-auth.js';
import { signWebhook } from '../signing/standard-webhooks.js';
import { bearerMatches, requestVerifier } from './ingest-auth.js';

interface Vector {
  id: string;
  secret?: string;
  msg_id?: string;
  timestamp?: number;
  now_for_check?: number;
  payload?: string;
  expected_signature?: string;
  webhook_signature_header?: string;
  invalid_webhook_signature_headers?: string[];
  cases?: { now: number; expected_valid: boolean }[];
  secrets_that_must_be_rejected?: string[];
}

const vectors = (
  JSON.parse(
    readFileSync(
      new URL('../../../shared/conformance/standard-webhooks/vectors.json', import.meta.url),
      'utf8',
    ),
  ) as { vectors: Vector[] }
).vectors;
const vector = (id: string) => vectors.find((v) => v.id === id)!;

/** The reason a verifier gives, or null when it accepts. */
function verdict(run: () => void): string | null {
  try {
    run();
    return null;
  } catch (err) {
    assert.ok(err instanceof HeraldError);
    assert.equal(err.status, 401);
    return err.message;
  }
}

function standardWebhooks(secret: string, nowSeconds: number) {
  const auth = ingestAuthSchema.parse({ standardWebhooks: { secret } });
  return requestVerifier(auth, () => nowSeconds * 1000);
}

describe('inbound Standard Webhooks against the conformance vectors', () => {
  it('accepts the signed vectors, with and without the whsec_ prefix', () => {
    for (const id of ['sw-sign-1', 'sw-sign-1-unprefixed-secret']) {
      const v = vector(id);
      const verify = standardWebhooks(v.secret!, v.timestamp!);
      const headers = {
        'webhook-id': v.msg_id,
        'webhook-timestamp': String(v.timestamp),
        'webhook-signature': v.expected_signature,
      };
      assert.equal(
        verdict(() => verify(Buffer.from(v.payload!), headers)),
        null,
        id,
      );
    }
  });

  it('accepts a list with decoys and other versions when one v1 entry matches', () => {
    const v = vector('sw-verify-multi-signature-header');
    const verify = standardWebhooks(v.secret!, v.now_for_check!);
    const headers = {
      'webhook-id': v.msg_id,
      'webhook-timestamp': String(v.timestamp),
      'webhook-signature': v.webhook_signature_header,
    };
    assert.equal(
      verdict(() => verify(Buffer.from(v.payload!), headers)),
      null,
    );
  });

  it('refuses every invalid signature of the vectors', () => {
    const v = vector('sw-verify-invalid-signatures');
    const verify = standardWebhooks(v.secret!, v.now_for_check!);
    for (const signature of v.invalid_webhook_signature_headers!) {
      const reason = verdict(() =>
        verify(Buffer.from(v.payload!), {
          'webhook-id': v.msg_id,
          'webhook-timestamp': String(v.timestamp),
          'webhook-signature': signature,
        }),
      );
      assert.match(reason ?? 'accepted', /webhook-signature does not match/, signature);
    }
  });

  it('holds the 5-minute tolerance both ways, as the vectors draw it', () => {
    const v = vector('sw-timestamp-tolerance');
    for (const { now, expected_valid } of v.cases!) {
      const reason = verdict(() =>
        standardWebhooks(v.secret!, now)(Buffer.from(v.payload!), {
          'webhook-id': v.msg_id,
          'webhook-timestamp': String(v.timestamp),
          'webhook-signature': v.webhook_signature_header,
        }),
      );
      if (expected_valid) assert.equal(reason, null, `now ${now}`);
      else assert.match(reason ?? 'accepted', now > v.timestamp! ? /in the past/ : /in the future/);
    }
  });

  it('refuses the empty secrets of the vectors, and short or non-base64 ones, at config load', () => {
    const rejected = [
      ...vector('sw-empty-secret').secrets_that_must_be_rejected!,
      'whsec_c2hvcnQ=',
      'whsec_not base64!',
    ];
    for (const secret of rejected) {
      const parsed = ingestAuthSchema.safeParse({ standardWebhooks: { secret } });
      assert.equal(parsed.success, false, JSON.stringify(secret));
      assert.doesNotMatch(JSON.stringify(parsed.error?.issues), /c2hvcnQ|not base64/);
    }
  });

  it('names each missing header', () => {
    const verify = standardWebhooks(vector('sw-sign-1').secret!, 1614265330);
    for (const missing of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const headers: Record<string, string> = {
        'webhook-id': 'msg_1',
        'webhook-timestamp': '1614265330',
        'webhook-signature': 'v1,AAAA',
      };
      delete headers[missing];
      assert.match(
        verdict(() => verify(Buffer.from('{}'), headers)) ?? '',
        new RegExp(`missing header ${missing}`),
      );
    }
  });

  it('verifies the bytes received: any change to body, id or timestamp is refused (property)', () => {
    const secret = vector('sw-sign-1').secret!;
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.nat(199),
        fc.integer({ min: 1, max: 255 }),
        (bytes, at, flip) => {
          const body = Buffer.from(bytes);
          const now = 1_700_000_000;
          const headers = {
            'webhook-id': 'msg_prop',
            'webhook-timestamp': String(now),
            'webhook-signature': signWebhook(secret, 'msg_prop', now, body),
          };
          const verify = standardWebhooks(secret, now);
          assert.equal(
            verdict(() => verify(body, headers)),
            null,
          );
          const changed = Buffer.from(body);
          changed[at % changed.length]! ^= flip;
          assert.notEqual(
            verdict(() => verify(changed, headers)),
            null,
          );
          assert.notEqual(
            verdict(() => verify(body, { ...headers, 'webhook-id': 'msg_other' })),
            null,
          );
        },
      ),
    );
  });
});

describe('inbound HMAC (GitHub-style)', () => {
  const secret = "It's a Secret to Everybody";
  const github = requestVerifier(ingestAuthSchema.parse({ hmac: { secret } }));

  it('accepts GitHub’s documented example delivery', () => {
    // docs.github.com "Validating webhook deliveries": this secret and payload give this signature.
    const headers = {
      'x-hub-signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
    };
    assert.equal(
      verdict(() => github(Buffer.from('Hello, World!'), headers)),
      null,
    );
  });

  it('refuses a forged, truncated, re-prefixed or missing signature, saying which', () => {
    const body = Buffer.from('{"action":"opened"}');
    const good = createHmac('sha256', secret).update(body).digest('hex');
    assert.equal(
      verdict(() => github(body, { 'x-hub-signature-256': `sha256=${good}` })),
      null,
    );
    assert.equal(
      verdict(() => github(body, { 'x-hub-signature-256': `sha256=${good.toUpperCase()}` })),
      null,
    );
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /missing header x-hub-signature-256/],
      [{ 'x-hub-signature-256': good }, /must start with "sha256="/],
      [{ 'x-hub-signature-256': `sha1=${good}` }, /must start with "sha256="/],
      [{ 'x-hub-signature-256': `sha256=${good.slice(0, 40)}` }, /does not match/],
      [
        { 'x-hub-signature-256': `sha256=${good.replace(/.$/, (c) => (c === '0' ? '1' : '0'))}` },
        /does not match/,
      ],
      [{ 'x-hub-signature-256': `sha256=${'z'.repeat(64)}` }, /does not match/],
      [
        { 'x-hub-signature-256': `sha256=${createHmac('sha256', 'guess').update(body).digest('hex')}` },
        /does not match/,
      ],
    ];
    for (const [headers, reason] of cases) {
      const message = verdict(() => github(body, headers));
      assert.match(message ?? 'accepted', reason, JSON.stringify(headers));
      assert.doesNotMatch(message ?? '', new RegExp(good.slice(0, 16)));
    }
  });

  it('follows the header, prefix, algorithm and encoding it is given', () => {
    const verify = requestVerifier(
      ingestAuthSchema.parse({
        hmac: { secret: 's', header: 'X-Shop-Hmac', prefix: '', algorithm: 'sha512', encoding: 'base64' },
      }),
    );
    const body = Buffer.from('order');
    const signature = createHmac('sha512', 's').update(body).digest('base64');
    assert.equal(
      verdict(() => verify(body, { 'x-shop-hmac': signature })),
      null,
    );
    assert.notEqual(
      verdict(() => verify(Buffer.from('order!'), { 'x-shop-hmac': signature })),
      null,
    );
  });

  it('is configured with exactly one scheme', () => {
    assert.equal(ingestAuthSchema.safeParse({}).success, false);
    assert.equal(
      ingestAuthSchema.safeParse({
        hmac: { secret: 's' },
        standardWebhooks: { secret: vector('sw-sign-1').secret },
      }).success,
      false,
    );
  });
});

describe('bearer tokens', () => {
  it('match only the exact token, whatever else is sent (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (token, other) => {
        const clean = token.replace(/\s/g, 'x');
        assert.equal(bearerMatches(`Bearer ${clean}`, clean), true);
        assert.equal(bearerMatches(`bearer ${clean}`, clean), true);
        if (other !== clean) assert.equal(bearerMatches(`Bearer ${other}`, clean), false);
        assert.equal(bearerMatches(clean, clean), false);
        assert.equal(bearerMatches(undefined, clean), false);
      }),
    );
  });
});
