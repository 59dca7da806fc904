import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { EventValidationError, HeraldError } from '../errors.js';
import {
  encodeHeaderValue,
  parseHttpEvents,
  toBinaryHttp,
  toStructuredHttp,
  toStructuredNats,
  validateEvent,
} from './index.js';
import { eventFromJson, eventJson, eventJsonLength } from './serialize.js';
import type { CloudEvent } from './types.js';

const conformance = new URL('../../../shared/conformance/cloudevents-http/', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(conformance, path), 'utf8');

const minimal = { specversion: '1.0', id: '1', source: '/src', type: 'com.example.t' };

function rejects(input: unknown, attribute: string, message?: RegExp) {
  assert.throws(
    () => validateEvent(input),
    (err: unknown) => {
      assert.ok(err instanceof EventValidationError, String(err));
      assert.equal(err.attribute, attribute);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
}

const http = (headers: Record<string, string>, body: string | Buffer = '') =>
  parseHttpEvents({
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
    body: Buffer.isBuffer(body) ? body : Buffer.from(body),
  });

describe('CloudEvent validation', () => {
  it('accepts a minimal event and keeps optional attributes and extensions', () => {
    assert.deepEqual(validateEvent(minimal), minimal);
    const full = {
      ...minimal,
      subject: 'orders/1',
      time: '2018-04-05T17:31:00.123+02:00',
      datacontenttype: 'application/json; charset=utf-8',
      dataschema: 'https://example.com/schema.json',
      data: { a: 1 },
      myext: 'x',
      count: 3,
      flag: false,
    };
    assert.deepEqual(validateEvent(full), full);
  });

  it('names each missing required attribute', () => {
    for (const attr of ['specversion', 'id', 'source', 'type']) {
      const input: Record<string, unknown> = { ...minimal };
      delete input[attr];
      rejects(input, attr, /missing/);
    }
  });

  it('names attributes of the wrong type or form', () => {
    rejects({ ...minimal, id: 7 }, 'id', /must be a string, got number/);
    rejects({ ...minimal, type: '' }, 'type', /empty/);
    rejects({ ...minimal, source: ['a'] }, 'source', /an array/);
    rejects({ ...minimal, specversion: '0.3' }, 'specversion', /unsupported/);
    rejects({ ...minimal, specversion: 1 }, 'specversion');
    rejects({ ...minimal, time: 'yesterday' }, 'time', /RFC 3339/);
    rejects({ ...minimal, time: '2018-04-05 17:31:00' }, 'time');
    rejects({ ...minimal, datacontenttype: 'json' }, 'datacontenttype', /media type/);
    rejects({ ...minimal, dataschema: '/relative/path' }, 'dataschema', /absolute URI/);
    rejects({ ...minimal, subject: 5 }, 'subject');
    rejects({ ...minimal, data: 1, data_base64: 'AA==' }, 'data_base64', /both/);
    rejects({ ...minimal, data_base64: 'not base64!' }, 'data_base64', /base64/);
  });

  it('rejects bad extension names and values', () => {
    rejects({ ...minimal, MyExt: 'x' }, 'MyExt', /lower-case/);
    rejects({ ...minimal, 'my-ext': 'x' }, 'my-ext', /lower-case/);
    rejects({ ...minimal, my_ext: 'x' }, 'my_ext', /lower-case/);
    rejects({ ...minimal, ext: { nested: true } }, 'ext', /string, integer or boolean/);
    rejects({ ...minimal, ext: 1.5 }, 'ext', /integer/);
    rejects({ ...minimal, ext: 2 ** 31 }, 'ext', /32-bit/);
  });

  it('treats null attributes as absent', () => {
    assert.deepEqual(validateEvent({ ...minimal, subject: null, unsetextension: null }), minimal);
  });

  it('rejects what is not an object', () => {
    for (const bad of [null, 'x', 3, [minimal]]) rejects(bad, '(event)', /JSON object/);
  });

  it('every event it accepts is valid per the official JSON schema (property)', () => {
    const schema = JSON.parse(read('spec-json-schema/cloudevents.json'));
    const ajv = new Ajv({ strict: false });
    addFormats.default(ajv);
    const check = ajv.compile(schema);
    fc.assert(
      fc.property(arbitraryEvent(), (input) => {
        const event = validateEvent(input);
        assert.ok(check(event), JSON.stringify(check.errors));
      }),
    );
  });
});

function arbitraryEvent(): fc.Arbitrary<CloudEvent> {
  const text = fc.string({ minLength: 1, maxLength: 12 });
  return fc
    .record(
      {
        id: text,
        source: fc.constantFrom('/a', 'https://example.com/x', 'urn:x:y', 'shop'),
        type: text,
        subject: text,
        time: fc
          .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
          .map((d) => d.toISOString()),
        datacontenttype: fc.constantFrom('application/json', 'text/plain; charset=utf-8'),
        // What JSON can carry (it has no -0).
        data: fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown),
        extone: fc.oneof(fc.string(), fc.boolean(), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
      },
      { requiredKeys: ['id', 'source', 'type'] },
    )
    .map((e) => ({ specversion: '1.0' as const, ...e }))
    .filter((e) => !(e.datacontenttype?.startsWith('text/') && typeof e.data !== 'string'));
}

describe('HTTP binding', () => {
  it('structured mode', () => {
    const res = http(
      { 'content-type': 'application/cloudevents+json; charset=utf-8' },
      JSON.stringify({ ...minimal, data: { a: 1 } }),
    );
    assert.equal(res.mode, 'structured');
    assert.deepEqual(res.events, [{ ...minimal, data: { a: 1 } }]);
  });

  it('batch mode, including an empty batch', () => {
    const res = http(
      { 'content-type': 'application/cloudevents-batch+json' },
      JSON.stringify([minimal, { ...minimal, id: '2' }]),
    );
    assert.equal(res.mode, 'batch');
    assert.deepEqual(
      res.events.map((e) => e.id),
      ['1', '2'],
    );
    assert.deepEqual(http({ 'content-type': 'application/cloudevents-batch+json' }, '[]').events, []);
    assert.throws(
      () => http({ 'content-type': 'application/cloudevents-batch+json' }, JSON.stringify(minimal)),
      (e: unknown) => e instanceof HeraldError && /JSON array/.test(e.message),
    );
  });

  it('binary mode: headers, content type and data by media type', () => {
    const base = {
      'ce-specversion': '1.0',
      'ce-id': '1',
      'ce-source': '/src',
      'ce-type': 't',
      'ce-myext': 'v',
    };
    const json = http({ ...base, 'content-type': 'application/json' }, '{"a":1}');
    assert.equal(json.mode, 'binary');
    assert.deepEqual(json.events[0], {
      specversion: '1.0',
      id: '1',
      source: '/src',
      type: 't',
      myext: 'v',
      datacontenttype: 'application/json',
      data: { a: 1 },
    });
    assert.equal(http({ ...base, 'content-type': 'text/plain' }, 'héllo').events[0]!.data, 'héllo');
    const bin = http({ ...base, 'content-type': 'application/octet-stream' }, Buffer.from([0, 255, 1]))
      .events[0]!;
    assert.equal(bin.data_base64, Buffer.from([0, 255, 1]).toString('base64'));
    assert.equal(http(base).events[0]!.data, undefined);
  });

  it('binary mode percent-decodes header values and rejects invalid UTF-8', () => {
    const vectors = JSON.parse(read('spec-examples.json')).header_value_percent_encoding.vectors as {
      decoded?: string;
      encoded: string;
      expect?: string;
    }[];
    for (const v of vectors) {
      const headers = {
        'ce-specversion': '1.0',
        'ce-id': '1',
        'ce-source': '/s',
        'ce-type': 't',
        'ce-subject': v.encoded,
      };
      if (v.decoded !== undefined) {
        assert.equal(http(headers).events[0]!.subject, v.decoded);
        assert.equal(encodeHeaderValue(v.decoded), v.encoded);
      } else assert.throws(() => http(headers), HeraldError);
    }
  });

  it('names the problem: not a CloudEvent (415), malformed JSON (400), bad attribute in a batch', () => {
    assert.throws(
      () => http({ 'content-type': 'application/json' }, '{}'),
      (e: unknown) => e instanceof HeraldError && e.status === 415,
    );
    assert.throws(
      () => http({ 'content-type': 'application/cloudevents+json' }, '{"specversion":'),
      (e: unknown) => e instanceof HeraldError && e.status === 400 && /JSON/.test(e.message),
    );
    assert.throws(
      () =>
        http(
          { 'content-type': 'application/cloudevents-batch+json' },
          JSON.stringify([minimal, { ...minimal, type: 1 }]),
        ),
      (e: unknown) => e instanceof EventValidationError && e.attribute === '[1].type',
    );
  });

  it('structured and binary serialisations parse back to the same event (property)', () => {
    fc.assert(
      fc.property(arbitraryEvent(), (input) => {
        const event = validateEvent(input);
        const s = toStructuredHttp(event);
        assert.deepEqual(http(s.headers, s.body).events[0], event);
        const b = toBinaryHttp(event);
        const back = http(b.headers, b.body).events[0]!;
        // Binary headers carry extensions as strings: compare in that form.
        const expected: Record<string, unknown> = { ...event };
        for (const [k, v] of Object.entries(expected)) {
          if (!['data', 'data_base64'].includes(k) && typeof v !== 'string') expected[k] = String(v);
        }
        if (expected.data !== undefined && expected.datacontenttype === undefined)
          expected.datacontenttype = 'application/json';
        assert.deepEqual(back, expected);
      }),
    );
  });
});

describe('conformance: cloudevents/conformance YAML cases', () => {
  type Case = {
    Mode?: string;
    ContextAttributes: Record<string, string> & { Extensions?: Record<string, string> };
    Data?: string;
  };
  const files = ['yaml/v1.yaml', 'yaml/v1.0/v1_minimum.yaml'];
  for (const file of files) {
    // failsafe schema: every scalar is a string, as on the wire (`specversion: 1.0` stays "1.0").
    const cases = parseAllDocuments(read(file), { schema: 'failsafe' }).map((d) => d.toJS() as Case);
    cases.forEach((c, i) => {
      for (const mode of c.Mode ? [c.Mode] : ['binary', 'structured']) {
        it(`${file} #${i} (${c.ContextAttributes.id}) in ${mode} mode`, () => {
          const { Extensions = {}, ...attrs } = c.ContextAttributes;
          const contentType = attrs.datacontenttype;
          let parsed: CloudEvent;
          if (mode === 'binary') {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries({ ...attrs, ...Extensions })) {
              if (k !== 'datacontenttype') headers[`ce-${k}`] = encodeHeaderValue(v.trim());
            }
            if (contentType) headers['content-type'] = contentType;
            parsed = http(headers, c.Data ?? '').events[0]!;
          } else {
            const body: Record<string, unknown> = {
              ...attrs,
              ...Object.fromEntries(Object.entries(Extensions).map(([k, v]) => [k, v.trim()])),
            };
            if (c.Data !== undefined) {
              body.data =
                contentType?.startsWith('application/json') || !contentType ? JSON.parse(c.Data) : c.Data;
            }
            parsed = http({ 'content-type': 'application/cloudevents+json' }, JSON.stringify(body))
              .events[0]!;
          }
          for (const [k, v] of Object.entries(attrs)) assert.equal(parsed[k], v, k);
          for (const [k, v] of Object.entries(Extensions)) assert.equal(parsed[k], v.trim(), k);
          if (c.Data !== undefined) {
            if (mode === 'binary' && !contentType) {
              // No content type: the bytes are kept as they came.
              assert.equal(Buffer.from(parsed.data_base64 as string, 'base64').toString(), c.Data);
            } else {
              const expected =
                !contentType || contentType.startsWith('application/json') ? JSON.parse(c.Data) : c.Data;
              assert.deepEqual(parsed.data, expected);
            }
          }
        });
      }
    });
  }
});

describe('conformance: http-protocol-binding.feature', () => {
  const text = read('features/http-protocol-binding.feature');
  const outlines = text.split(/\n\s*Scenario Outline: /).slice(1);
  const docstrings = (block: string) =>
    [...block.matchAll(/"""\n([\s\S]*?)\n\s*"""/g)].map((m) => {
      const lines = m[1]!.split('\n');
      const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)![0].length));
      return lines.map((l) => l.slice(indent)).join('\n');
    });
  for (const outline of outlines) {
    const [request, dataJson] = docstrings(outline);
    const table = [
      ...outline
        .split('Then the attributes are:')[1]!
        .split('And the data')[0]!
        .matchAll(/\|\s*(\w+)\s*\|\s*([^|]+?)\s*\|/g),
    ]
      .filter((m) => m[1] !== 'key')
      .map((m) => [m[1]!, m[2]!] as const);
    const examples = outline
      .split('Examples:')[1]!
      .split('\n')
      .map((l) => l.match(/^\s*\|\s*(.+?)\s*\|\s*$/)?.[1])
      .filter((v): v is string => Boolean(v) && v !== 'contentType');
    for (const contentType of examples) {
      it(`${outline.split('\n')[0]!.replace('<contentType>', contentType)}`, () => {
        const raw = request!.replaceAll('<contentType>', contentType);
        const [head, ...rest] = raw.split('\n\n');
        const headers: Record<string, string> = {};
        for (const line of head!.split('\n').slice(1)) {
          const at = line.indexOf(':');
          headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
        }
        delete headers['content-length'];
        const parsed = http(headers, rest.join('\n\n')).events[0]!;
        for (const [key, value] of table)
          assert.equal(parsed[key], value.replace('<contentType>', contentType), key);
        assert.deepEqual(parsed.data, JSON.parse(dataJson!));
      });
    }
  }
});

describe('conformance: spec JSON-format examples and SDK payloads', () => {
  const spec = JSON.parse(read('spec-examples.json'));
  for (const ex of spec.json_format_examples as {
    id: string;
    structured_json: Record<string, unknown>;
    binary_http: { headers: Record<string, string>; body: string };
    note?: string;
  }[]) {
    if (String(ex.note).startsWith('ILLUSTRATIVE')) continue;
    it(`${ex.id}: structured and binary forms give the same event`, () => {
      const structured = http(
        { 'content-type': 'application/cloudevents+json' },
        JSON.stringify(ex.structured_json),
      ).events[0]!;
      const binary = http(ex.binary_http.headers, ex.binary_http.body).events[0]!;
      const asStrings = (e: CloudEvent) =>
        Object.fromEntries(
          Object.entries(e).map(([k, v]) => [k, k === 'data' || typeof v === 'string' ? v : String(v)]),
        );
      // Without datacontenttype, structured data is implicitly application/json, which binary states.
      if (structured.datacontenttype === undefined && structured.data !== undefined) {
        structured.datacontenttype = 'application/json';
      }
      if (structured.data_base64 !== undefined && binary.data_base64 === undefined) {
        assert.equal(Buffer.from(structured.data_base64, 'base64').toString(), ex.binary_http.body);
        return;
      }
      assert.deepEqual(asStrings(binary), asStrings(structured));
    });
  }
  for (const batch of spec.json_batch_examples as { id: string; body: unknown[] }[]) {
    it(`${batch.id}`, () => {
      const valid = batch.body.filter(
        (e) => !String((e as { data_base64?: string }).data_base64 ?? '').includes('...'),
      );
      const res = http({ 'content-type': 'application/cloudevents-batch+json' }, JSON.stringify(valid));
      assert.equal(res.events.length, valid.length);
    });
  }
  const dir = join(conformance, 'sdk-javascript-payload/v1');
  for (const file of readdirSync(dir)) {
    it(`sdk payload ${file}`, () => {
      const input = JSON.parse(readFileSync(join(dir, file), 'utf8'));
      const event = http({ 'content-type': 'application/cloudevents+json' }, JSON.stringify(input))
        .events[0]!;
      assert.deepEqual(event, input);
      if (event.data_base64)
        assert.deepEqual(JSON.parse(Buffer.from(event.data_base64, 'base64').toString()), { much: 'wow' });
    });
  }
});

describe('event JSON size', () => {
  it('sizes an event read back from its stored text by that text, without serialising it again', () => {
    const stored = '{ "specversion": "1.0", "id": "a", "source": "s", "type": "t", "data": { "n": 1 } }';
    const event = eventFromJson(stored);
    assert.deepEqual(event, { specversion: '1.0', id: 'a', source: 's', type: 't', data: { n: 1 } });
    // The stored text has spaces a fresh serialisation would not: its length is what counts.
    assert.equal(eventJsonLength(event), stored.length);
    assert.notEqual(JSON.stringify(event).length, stored.length);
    const fresh = { specversion: '1.0' as const, id: 'b', source: 's', type: 't' };
    assert.equal(eventJsonLength(fresh), JSON.stringify(fresh).length);
    assert.equal(eventJsonLength(fresh), eventJson(fresh).length);
  });

  it('a structured HTTP or NATS body reuses the text ingest made, and remembers none it made itself', () => {
    const serialised: unknown[] = [];
    const stringify = JSON.stringify;
    const counting = ((value: unknown, ...rest: []) => {
      serialised.push(value);
      return stringify(value, ...rest);
    }) as typeof JSON.stringify;
    const ingested = { specversion: '1.0' as const, id: 'c', source: 's', type: 't', data: { n: 2 } };
    const text = eventJson(ingested);
    const readBack = eventFromJson(text);
    JSON.stringify = counting;
    try {
      assert.equal(toStructuredHttp(ingested).body, text);
      assert.equal(Buffer.from(toStructuredNats(ingested).payload).toString('utf8'), text);
      assert.deepEqual(serialised, []);
      // An event read back from the store has no text of ingest's: serialised for each send only.
      assert.equal(toStructuredHttp(readBack).body, text);
      assert.equal(eventJsonLength(readBack), text.length);
      assert.equal(toStructuredHttp(readBack).body, text);
      assert.deepEqual(serialised, [readBack, readBack]);
    } finally {
      JSON.stringify = stringify;
    }
  });
});
