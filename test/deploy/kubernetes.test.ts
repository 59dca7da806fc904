import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { validateHeraldConfig } from './validate-config.js';

const dir = join(import.meta.dirname, '../../deploy/kubernetes');

// Each model validates against the Kubernetes OpenAPI schema of its kind (kubernetes-models ships
// validators generated from it): types, required fields, enums and formats.
const models: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
};

// biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below
type Manifest = Record<string, any>;

function loadManifests(): { file: string; doc: Manifest }[] {
  const out: { file: string; doc: Manifest }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const document of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      assert.deepEqual(document.errors, [], `${file} is not valid YAML`);
      out.push({ file, doc: document.toJS() as Manifest });
    }
  }
  return out;
}

const manifests = loadManifests();
const ofKind = (kind: string) => manifests.map((m) => m.doc).filter((d) => d.kind === kind);
const deployments = ofKind('Deployment');
const deployment = (component: string) => {
  const found = deployments.find((d) => d.metadata.labels['app.kubernetes.io/component'] === component);
  assert.ok(found, `no Deployment for ${component}`);
  return found;
};
const heraldContainer = (d: Manifest) => d.spec.template.spec.containers[0];
const argValue = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
const configMap = ofKind('ConfigMap')[0]!;
const heraldYaml: string = configMap.data['herald.yaml'];

function validationError(doc: Manifest): string | null {
  const Model = models[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return `no schema for ${doc.apiVersion} ${doc.kind}`;
  try {
    new Model(doc as never).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  it('every document validates against the Kubernetes schema of its kind', () => {
    assert.ok(manifests.length >= 12, `only ${manifests.length} documents found`);
    for (const { file, doc } of manifests) {
      assert.equal(validationError(doc), null, `${file}: ${doc.kind} ${doc.metadata?.name}`);
      assert.equal(
        doc.metadata.namespace ?? doc.metadata.name,
        'herald',
        `${file}: ${doc.kind} outside herald`,
      );
    }
  });

  it('the schema check catches a wrong type, a missing required field and a bad enum', () => {
    const wrongPort = structuredClone(deployment('ingest'));
    heraldContainer(wrongPort).ports[0].containerPort = 'eight thousand';
    assert.match(validationError(wrongPort) ?? '', /containerPort/);
    const noSelector = structuredClone(deployment('worker'));
    delete noSelector.spec.selector;
    assert.match(validationError(noSelector) ?? '', /selector/);
    const badPolicy = structuredClone(deployment('worker'));
    badPolicy.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes';
    assert.match(validationError(badPolicy) ?? '', /imagePullPolicy/);
  });

  it('kustomization.yaml lists every manifest file, and each exists', () => {
    const kustomization = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Manifest;
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.deepEqual([...kustomization.resources].sort(), files.sort());
  });

  it('one Deployment per role set runs every stage: ingest, router and dispatcher', () => {
    const roles = deployments.flatMap((d) => argValue(heraldContainer(d).args, '--role').split(','));
    assert.deepEqual(roles.sort(), ['dispatcher', 'ingest', 'router']);
    for (const d of deployments) {
      assert.ok(d.spec.replicas >= 2, `${d.metadata.name}: a single replica cannot survive a drain`);
      assert.deepEqual(d.spec.selector.matchLabels, d.spec.template.metadata.labels);
    }
  });

  it('every Herald container is probed on /healthz and /readyz, has requests and runs unprivileged', () => {
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      const c = heraldContainer(d);
      const port = argValue(c.args, '--port');
      assert.equal(String(c.ports[0].containerPort), port, `${d.metadata.name}: probes target another port`);
      assert.equal(c.livenessProbe.httpGet.path, '/healthz');
      assert.equal(c.startupProbe.httpGet.path, '/healthz');
      assert.equal(c.readinessProbe.httpGet.path, '/readyz');
      for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe])
        assert.equal(probe.httpGet.port, c.ports[0].name);
      assert.ok(c.resources.requests.cpu && c.resources.requests.memory, `${d.metadata.name}: no requests`);
      assert.ok(c.resources.limits.memory, `${d.metadata.name}: no memory limit`);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.notEqual(pod.securityContext.runAsUser, 0);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.ok(pod.terminationGracePeriodSeconds >= 30, 'too little time to finish in-flight sends');
    }
  });

  it('each pod mounts the ConfigMap where --config points and takes its secrets from the Secret', () => {
    const secret = ofKind('Secret')[0]!;
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      const c = heraldContainer(d);
      const configPath: string = argValue(c.args, '--config');
      const mount = c.volumeMounts.find((m: Manifest) => configPath.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `${d.metadata.name}: nothing mounted at ${configPath}`);
      const volume = pod.volumes.find((v: Manifest) => v.name === mount.name);
      assert.equal(volume.configMap.name, configMap.metadata.name);
      assert.ok(configPath.endsWith('/herald.yaml') && 'herald.yaml' in configMap.data);
      assert.deepEqual(c.envFrom, [{ secretRef: { name: secret.metadata.name } }]);
    }
  });

  it('every ${VAR} the config needs without a default is a key of the Secret', () => {
    const secret = ofKind('Secret')[0]!;
    const needed = [...heraldYaml.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => m[1]!);
    assert.ok(needed.includes('DATABASE_URL') && needed.includes('NATS_URL'));
    for (const name of needed) assert.ok(name in secret.stringData, `${name} is not in the Secret`);
    for (const [key, value] of Object.entries(secret.stringData))
      assert.equal(value, '', `the Secret ships a value for ${key}; secrets belong to the operator`);
  });

  it('the Service sends traffic to the ingest pods only, on their HTTP port', () => {
    const [service] = ofKind('Service');
    assert.deepEqual(service!.spec.selector, deployment('ingest').spec.template.metadata.labels);
    assert.equal(service!.spec.ports[0].targetPort, heraldContainer(deployment('ingest')).ports[0].name);
  });

  it('each role has a PodDisruptionBudget that selects its pods and keeps one running', () => {
    const budgets = ofKind('PodDisruptionBudget');
    for (const d of deployments) {
      const labels = d.spec.template.metadata.labels;
      const budget = budgets.find((b) =>
        Object.entries(b.spec.selector.matchLabels).every(([k, v]) => labels[k] === v),
      );
      assert.ok(budget, `no PodDisruptionBudget selects ${d.metadata.name}`);
      assert.ok(budget.spec.minAvailable >= 1 && budget.spec.minAvailable < d.spec.replicas);
    }
  });

  it('only the workers hold Kubernetes rights: Jobs, their pods and logs, in one namespace', () => {
    assert.equal(ofKind('ClusterRole').length + ofKind('ClusterRoleBinding').length, 0);
    const [role] = ofKind('Role');
    const rights = new Map<string, string[]>();
    for (const rule of role!.rules)
      for (const resource of rule.resources)
        rights.set(`${rule.apiGroups[0]}/${resource}`, [...rule.verbs].sort());
    assert.deepEqual(Object.fromEntries(rights), {
      'batch/jobs': ['create', 'delete', 'get', 'list', 'watch'],
      '/pods': ['get', 'list'],
      '/pods/log': ['get'],
    });
    const bindings = ofKind('RoleBinding');
    assert.equal(bindings.length, 1);
    assert.deepEqual(
      bindings[0]!.subjects.map((s: Manifest) => s.name),
      [deployment('worker').spec.template.spec.serviceAccountName],
    );
    const ingestAccount = ofKind('ServiceAccount').find(
      (a) => a.metadata.name === deployment('ingest').spec.template.spec.serviceAccountName,
    );
    assert.equal(ingestAccount?.automountServiceAccountToken, false);
  });

  it('the ConfigMap holds a valid herald.yaml whose Job channel uses the namespace the Role covers', async () => {
    const result = await validateHeraldConfig(heraldYaml);
    assert.equal(result.code, 0, result.output);
    const config = parseYaml(heraldYaml) as Manifest;
    const jobChannels = Object.values(config.channels as Manifest).filter((c) => c.mode === 'kubernetes');
    assert.ok(jobChannels.length > 0);
    for (const channel of jobChannels)
      assert.equal(channel.kubernetes.namespace, ofKind('Role')[0]!.metadata.namespace);
  });

  it('the Job manifests in the ConfigMap are valid batch/v1 Jobs once Herald names them', () => {
    const config = parseYaml(heraldYaml) as Manifest;
    const manifestsInActions = Object.values(config.triggers as Manifest)
      .flatMap((t) => t.actions)
      .filter((a: Manifest) => a.manifest)
      .map((a: Manifest) => a.manifest);
    assert.ok(manifestsInActions.length > 0);
    for (const manifest of manifestsInActions) {
      // What the job channel sends: its apiVersion and kind filled in, a name from the delivery.
      const job = {
        apiVersion: 'batch/v1',
        kind: 'Job',
        ...manifest,
        metadata: { name: 'cluster-0123456789abcdef' },
      };
      assert.doesNotThrow(() => new Job(job).validate());
      // The namespace enforces the restricted Pod Security profile: a Job pod must fit it.
      const pod = job.spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true);
      for (const c of pod.containers) assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    }
  });
});
