// Fails when a shipped example YAML has text that a `#` silently cuts. In YAML, " #" inside an
// unquoted (plain) value starts a comment, so `description: Sales go to the #sales channel.` reads
// "Sales go to the". Two patterns are reported:
//   - a comment right after a plain value of several words on the same line: prose, cut short;
//   - a comment written `#word` (no space after `#`) right after a key or a value on the same
//     line: a Slack channel or a hashtag meant as text (a note is written `# note`).
// A one-word value followed by `  # note` is an ordinary trailing comment and passes.
// Usage: node --import tsx scripts/lint-examples.ts [dir]  (default: examples/)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CST, Lexer } from 'yaml';

export interface CutText {
  line: number;
  /** The value as YAML reads it, and the comment that was meant to be part of it. */
  value: string;
  comment: string;
  message: string;
}

/** Tokens the lexer emits that are not in the source text. */
const CONTROL_TOKENS = new Set([CST.DOCUMENT, CST.FLOW_END, CST.SCALAR]);

export function findCutText(text: string): CutText[] {
  const found: CutText[] = [];
  let line = 1;
  // The last token on the current line that is not space: what a comment follows.
  let last: { kind: 'plain' | 'other'; source: string } | undefined;
  let nextIsScalar = false;
  let inBlockScalar = false;
  for (const token of new Lexer().lex(text)) {
    if (token === CST.SCALAR) {
      nextIsScalar = true;
      continue;
    }
    if (CONTROL_TOKENS.has(token)) continue;
    const type = CST.tokenType(token);
    if (nextIsScalar) {
      nextIsScalar = false;
      // The body of a `|` or `>` block is text as written: a `#` in it is no comment.
      if (inBlockScalar) inBlockScalar = false;
      else last = { kind: 'plain', source: token };
    } else if (type === 'comment' && last) {
      const severalWords = last.kind === 'plain' && /\s/.test(last.source.trim());
      const textLike = /^#\S/.test(token);
      if (severalWords || textLike) {
        const value = last.kind === 'plain' ? last.source.trim() : '';
        found.push({
          line,
          value,
          comment: token,
          message: `"${token}" is read as a comment, so the value is ${value ? `"${value}"` : 'empty'}: quote the whole value to keep the "#"`,
        });
      }
    } else if (type === 'block-scalar-header') {
      inBlockScalar = true;
      last = { kind: 'other', source: token };
    } else if (type === 'newline') last = undefined;
    else if (type !== 'space' && type !== 'comment') last = { kind: 'other', source: token };
    for (const ch of token) if (ch === '\n') line++;
  }
  return found;
}

function yamlFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) yamlFiles(full, out);
    else if (/\.ya?ml$/.test(name)) out.push(full);
  }
  return out.sort();
}

/** Every cut text under `dir`, as `file:line: message` lines. */
export function lintExamples(dir: string): string[] {
  const root = resolve(dir, '..');
  return yamlFiles(dir).flatMap((file) =>
    findCutText(readFileSync(file, 'utf8')).map((c) => `${relative(root, file)}:${c.line}: ${c.message}`),
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2] ?? fileURLToPath(new URL('../examples', import.meta.url));
  const problems = lintExamples(dir);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`${problems.length} value(s) cut by a "#"`);
    process.exit(1);
  }
  console.log(`examples: no value cut by a "#"`);
}
