import type { Node } from './ast.js';

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** Prints an AST as a fully parenthesised expression that parses back to the same tree. */
export function print(node: Node): string {
  switch (node.kind) {
    case 'literal':
      if (node.type === 'String') return quote(node.value as string);
      if (node.type === 'Boolean') return node.value ? 'TRUE' : 'FALSE';
      return String(node.value);
    case 'identifier':
      return node.name;
    case 'exists':
      return `EXISTS ${node.name}`;
    case 'unary':
      return node.operator === 'NOT' ? `NOT (${print(node.operand)})` : `-(${print(node.operand)})`;
    case 'binary':
      return `(${print(node.left)} ${node.operator} ${print(node.right)})`;
    case 'like':
      return `(${print(node.operand)}${node.negated ? ' NOT' : ''} LIKE ${quote(node.pattern)})`;
    case 'in':
      return `(${print(node.operand)}${node.negated ? ' NOT' : ''} IN (${node.set.map(print).join(', ')}))`;
    case 'call':
      return `${node.name}(${node.args.map(print).join(', ')})`;
  }
}
