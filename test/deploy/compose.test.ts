import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { deploymentEnv, validateHeraldConfig } from './validate-config.js';

const deployDir = join(import.meta.dirname, '../../deploy');

// The Compose Specification's JSON schema, vendored as data (see schemas/README.md).
const schema = JSON.parse(readFileSync(join(import.meta.dirname, 'schemas/compose-spec.json'), 'utf8'));
delete schema.$schema;
const validateCompose = new Ajv({ strict: false, allErrors: true }).compile(schema);

// biome-ignore lint/suspicious/noExplicitAny: compose files are checked field by field below
type Compose = Record<string, any>;

/** A compose file as Compose reads it: YAML with merge keys (`<<: *herald`). */
function loadCompose(name: string): Compose {
  return parseYaml(readFileSync(join(deployDir, name), 'utf8'), { merge: true }) as Compose;
}

function schemaErrors(doc: unknown): string[] {
  if (validateCompose(doc)) return [];
  return (validateCompose.errors ?? []).map((e) => {
    const extra = (e.params as { additionalProperty?: string }).additionalProperty;
    return `${e.instancePath} ${e.message}${extra ? `: ${extra}` : ''}`;
  });
}

const argValue = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
const heraldServices = (doc: Compose) =>
  Object.entries(doc.services as Compose).filter(([, s]) => s.build?.dockerfile === 'deploy/Dockerfile');

describe('compose files (deploy/)', () => {
  for (const name of ['compose.yaml', 'compose.distributed.yaml']) {
    it(`${name} validates against the Compose Specification schema`, () => {
      assert.deepEqual(schemaErrors(loadCompose(name)), []);
    });
  }

  it('the schema check catches a misspelt key and a wrong type', () => {
    const doc = loadCompose('compose.yaml');
    doc.services.herald.stop_grace_perod = '30s';
    doc.services.herald.ports = '8080:8080';
    const errors = schemaErrors(doc).join('\n');
    assert.match(errors, /stop_grace_perod/);
    assert.match(errors, /\/services\/herald\/ports/);
  });

  it('embedded: one Herald keeps its SQLite store in a named volume and needs an admin token', () => {
    const doc = loadCompose('compose.yaml');
    const [[, herald]] = heraldServices(doc) as [[string, Compose]];
    const dataDir = argValue(herald.command, '--data');
    const volume = herald.volumes.find((v: string) => v.endsWith(`:${dataDir}`));
    assert.ok(volume, `nothing mounted at the data directory ${dataDir}`);
    assert.ok(volume.split(':')[0] in doc.volumes, 'the data directory is not a named volume');
    assert.equal(argValue(herald.command, '--host'), '0.0.0.0');
    // Listening beyond loopback: Herald refuses without a token, so Compose must refuse first.
    assert.match(herald.environment.HERALD_ADMIN_TOKEN, /^\$\{HERALD_ADMIN_TOKEN:\?/);
    assert.match(herald.ports[0], /^127\.0\.0\.1:/, 'published on every interface');
  });

  it('distributed: two Herald processes cover ingest, router and dispatcher on PostgreSQL and JetStream', () => {
    const doc = loadCompose('compose.distributed.yaml');
    const heralds = heraldServices(doc);
    assert.equal(heralds.length, 2);
    const roles = heralds.flatMap(([, s]) => argValue(s.command, '--role').split(','));
    assert.deepEqual(roles.sort(), ['dispatcher', 'ingest', 'router']);
    assert.ok(doc.services.nats.command.includes('--jetstream'), 'NATS runs without JetStream');
    assert.match(doc.services.postgres.image, /^postgres:\d+/);
    for (const [name, s] of heralds) {
      assert.deepEqual(s.depends_on, {
        postgres: { condition: 'service_healthy' },
        nats: { condition: 'service_healthy' },
      });
      assert.ok(doc.services.postgres.healthcheck && doc.services.nats.healthcheck);
      assert.match(
        s.environment.DATABASE_URL,
        /@postgres:5432\//,
        `${name}: DATABASE_URL is not the postgres service`,
      );
      assert.equal(s.environment.NATS_URL, 'nats://nats:4222');
      const configPath = argValue(s.command, '--config');
      assert.ok(
        s.volumes.some((v: string) => v === `./herald.yaml:${configPath}:ro`),
        `${name}: deploy/herald.yaml is not mounted at ${configPath}`,
      );
    }
  });

  it('distributed: deploy/herald.yaml is a valid config and every variable it needs is set', async () => {
    const text = readFileSync(join(deployDir, 'herald.yaml'), 'utf8');
    const result = await validateHeraldConfig(text);
    assert.equal(result.code, 0, result.output);
    const needed = [...text.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => m[1]!);
    assert.ok(needed.includes('DATABASE_URL') && needed.includes('NATS_URL'));
    for (const variable of Object.keys(deploymentEnv)) assert.ok(needed.includes(variable));
    for (const [name, s] of heraldServices(loadCompose('compose.distributed.yaml')))
      for (const variable of needed) assert.ok(variable in s.environment, `${name} does not set ${variable}`);
  });
});
