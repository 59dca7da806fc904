// Fails when an import under src/ breaks the layer rule of CONTRIBUTING.md: an import that runs
// upward, two folders (or two files) that import each other directly or in a cycle, or a plugin
// kind that imports another kind. Type-only imports count: they couple the code just the same.
// Usage: node --import tsx scripts/check-layers.ts [root]
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

/** Bottom first: a file may import its own layer (without a cycle) and the layers below it. */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'logger', 'redact', 'events', 'templates', 'filters', 'http-input', 'signing', 'nats'],
  ['engine'],
  ['store', 'bus', 'sources', 'channels', 'projections', 'subscriptions', 'slack-app', 'observability'],
  ['config', 'plugins'],
  ['server'],
  ['app', 'cli', 'client', 'index'],
];

export const LAYER_NAMES = ['ground', 'engine', 'implementations', 'config', 'server', 'entry points'];

/** Folders whose sub-folders are plugin kinds: a kind may not import another kind. */
const KIND_PARENTS = new Set(['store', 'bus', 'sources', 'channels']);

export interface Violation {
  rule: 'upward import' | 'folder cycle' | 'file cycle' | 'kind imports kind' | 'unknown folder';
  /** `src/engine/engine.ts:4 → src/config/load.ts`, one line per import involved. */
  imports: string[];
  message: string;
}

interface Edge {
  from: string;
  to: string;
  line: number;
}

/** `src/engine/x.ts` → `engine`; `src/app.ts` → `app`. */
export function folderOf(file: string): string {
  const parts = file.split('/');
  const first = parts[1] ?? '';
  return parts.length === 2 ? first.replace(/\.ts$/, '') : first;
}

function layerOf(folder: string): number {
  return LAYERS.findIndex((names) => names.includes(folder));
}

/** `src/sources/nats/index.ts` → `sources/nats`; null outside a kind's folder. */
function kindOf(file: string): string | null {
  const parts = file.split('/');
  return parts.length > 3 && KIND_PARENTS.has(parts[1]!) ? `${parts[1]}/${parts[2]}` : null;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) sourceFiles(full, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/** Relative imports of one file (static, type-only, re-exports and dynamic), resolved to files. */
function importsOf(root: string, file: string): Edge[] {
  const text = readFileSync(join(root, file), 'utf8');
  const info = ts.preProcessFile(text, true, true);
  const edges: Edge[] = [];
  for (const ref of info.importedFiles) {
    if (!ref.fileName.startsWith('.')) continue;
    const target = resolve(root, dirname(file), ref.fileName.replace(/\.js$/, '.ts'));
    const candidates = [target, join(target, 'index.ts')];
    const found = candidates.find((c) => existsSync(c) && statSync(c).isFile()) ?? target;
    const line = text.slice(0, ref.pos).split('\n').length;
    edges.push({ from: file, to: relative(root, found).split(sep).join('/'), line });
  }
  return edges;
}

const show = (e: Edge) => `${e.from}:${e.line} → ${e.to}`;

/** Strongly connected components of more than one node (Tarjan), each as its nodes. */
function cycles(nodes: Iterable<string>, next: (node: string) => string[]): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of nodes) if (!index.has(v)) visit(v);
  return found;
}

/** Every violation of the layer rule among the files under `<root>/src`. */
export function checkLayers(root: string): Violation[] {
  const files = sourceFiles(join(root, 'src'))
    .map((f) => relative(root, f).split(sep).join('/'))
    .sort();
  const edges = files.flatMap((f) => importsOf(root, f)).filter((e) => e.to.startsWith('src/'));
  const violations: Violation[] = [];

  for (const folder of new Set(files.map(folderOf))) {
    if (layerOf(folder) === -1)
      violations.push({
        rule: 'unknown folder',
        imports: [],
        message: `src/${folder} is in no layer: add it to LAYERS in scripts/check-layers.ts and to the layer list in CONTRIBUTING.md`,
      });
  }

  for (const edge of edges) {
    const from = folderOf(edge.from);
    const to = folderOf(edge.to);
    const [fromLayer, toLayer] = [layerOf(from), layerOf(to)];
    if (fromLayer !== -1 && toLayer > fromLayer)
      violations.push({
        rule: 'upward import',
        imports: [show(edge)],
        message: `${show(edge)}: ${from} (${LAYER_NAMES[fromLayer]}) may not import ${to} (${LAYER_NAMES[toLayer]}, a layer above)`,
      });
    const [fromKind, toKind] = [kindOf(edge.from), kindOf(edge.to)];
    if (fromKind && toKind && fromKind !== toKind)
      violations.push({
        rule: 'kind imports kind',
        imports: [show(edge)],
        message: `${show(edge)}: the kind ${fromKind} may not import another kind (${toKind}); move what both need to src/${fromKind.split('/')[0]}`,
      });
  }

  const folderEdges = new Map<string, Edge[]>();
  for (const edge of edges) {
    const [from, to] = [folderOf(edge.from), folderOf(edge.to)];
    if (from === to) continue;
    const key = `${from}\0${to}`;
    folderEdges.set(key, [...(folderEdges.get(key) ?? []), edge]);
  }
  const folderNext = (folder: string) =>
    [...folderEdges.keys()].filter((k) => k.startsWith(`${folder}\0`)).map((k) => k.split('\0')[1]!);
  for (const component of cycles(new Set(files.map(folderOf)), folderNext)) {
    const inside = [...folderEdges.entries()]
      .filter(([k]) => component.includes(k.split('\0')[0]!) && component.includes(k.split('\0')[1]!))
      .map(([, es]) => show(es[0]!));
    violations.push({
      rule: 'folder cycle',
      imports: inside,
      message: `folders import each other: ${component.join(', ')}\n    ${inside.join('\n    ')}`,
    });
  }

  const fileNext = new Map<string, string[]>();
  for (const edge of edges) fileNext.set(edge.from, [...(fileNext.get(edge.from) ?? []), edge.to]);
  for (const component of cycles(files, (f) => fileNext.get(f) ?? [])) {
    const inside = edges.filter((e) => component.includes(e.from) && component.includes(e.to)).map(show);
    violations.push({
      rule: 'file cycle',
      imports: inside,
      message: `files import each other: ${component.join(', ')}\n    ${inside.join('\n    ')}`,
    });
  }
  return violations;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const violations = checkLayers(root);
  for (const v of violations) console.error(`${v.rule}: ${v.message}`);
  if (violations.length > 0) {
    console.error(`\n${violations.length} import(s) break the layer rule (CONTRIBUTING.md, "Layers").`);
    process.exit(1);
  }
  console.log('layers: every import under src/ runs downward, no folder or file cycle');
}
