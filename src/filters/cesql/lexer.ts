import { CesqlParseError, type Position } from './errors.js';

export type TokenType =
  | 'integer'
  | 'string'
  | 'identifier'
  | 'keyword'
  | 'operator'
  | 'lparen'
  | 'rparen'
  | 'comma'
  | 'eof';

export interface Token {
  type: TokenType;
  /** Keywords upper-cased; identifiers as written; strings unescaped; operators as written. */
  value: string;
  position: Position;
}

const KEYWORDS = new Set(['AND', 'OR', 'XOR', 'NOT', 'EXISTS', 'IN', 'LIKE', 'TRUE', 'FALSE']);
const WORD = /[A-Za-z0-9_]/;

/** Splits an expression into tokens. Keywords are case-insensitive; whitespace is skipped. */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const pos = (offset: number): Position => ({ line, column: offset - lineStart + 1, offset });
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\r') {
      i++;
      continue;
    }
    const start = pos(i);
    if (ch === "'" || ch === '"') {
      let value = '';
      let j = i + 1;
      for (;;) {
        if (j >= source.length) throw new CesqlParseError('unterminated string literal', start);
        const c = source[j]!;
        if (c === '\\' && j + 1 < source.length) {
          const next = source[j + 1]!;
          // \' and \" are the quote; any other backslash pair is kept as written (LIKE reads it).
          value += next === "'" || next === '"' ? next : c + next;
          j += 2;
          continue;
        }
        if (c === ch) {
          if (source[j + 1] === ch) {
            value += ch; // A doubled quote is one quote.
            j += 2;
            continue;
          }
          break;
        }
        if (c === '\n') {
          line++;
          lineStart = j + 1;
        }
        value += c;
        j++;
      }
      tokens.push({ type: 'string', value, position: start });
      i = j + 1;
      continue;
    }
    if (WORD.test(ch)) {
      let j = i;
      while (j < source.length && WORD.test(source[j]!)) j++;
      const word = source.slice(i, j);
      const upper = word.toUpperCase();
      if (/^[0-9]+$/.test(word)) tokens.push({ type: 'integer', value: word, position: start });
      else if (KEYWORDS.has(upper)) tokens.push({ type: 'keyword', value: upper, position: start });
      else tokens.push({ type: 'identifier', value: word, position: start });
      i = j;
      continue;
    }
    if (ch === '(') tokens.push({ type: 'lparen', value: ch, position: start });
    else if (ch === ')') tokens.push({ type: 'rparen', value: ch, position: start });
    else if (ch === ',') tokens.push({ type: 'comma', value: ch, position: start });
    else {
      const two = source.slice(i, i + 2);
      if (two === '!=' || two === '<>' || two === '<=' || two === '>=') {
        tokens.push({ type: 'operator', value: two, position: start });
        i += 2;
        continue;
      }
      if ('+-*/%=<>'.includes(ch)) tokens.push({ type: 'operator', value: ch, position: start });
      else throw new CesqlParseError(`unexpected character ${JSON.stringify(ch)}`, start);
    }
    i++;
  }
  tokens.push({ type: 'eof', value: '', position: pos(i) });
  return tokens;
}
