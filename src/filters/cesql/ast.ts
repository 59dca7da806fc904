import type { Position } from './errors.js';

export type CesqlType = 'Integer' | 'String' | 'Boolean' | 'Any';
export type Value = number | string | boolean;

export type BinaryOperator =
  | 'AND'
  | 'OR'
  | 'XOR'
  | '='
  | '!='
  | '<>'
  | '<'
  | '<='
  | '>'
  | '>='
  | '+'
  | '-'
  | '*'
  | '/'
  | '%';

export type Node =
  | { kind: 'literal'; type: 'Integer' | 'String' | 'Boolean'; value: Value; position: Position }
  | { kind: 'identifier'; name: string; position: Position }
  | { kind: 'unary'; operator: 'NOT' | '-'; operand: Node; position: Position }
  | { kind: 'binary'; operator: BinaryOperator; left: Node; right: Node; position: Position }
  | { kind: 'like'; operand: Node; pattern: string; negated: boolean; position: Position }
  | { kind: 'in'; operand: Node; set: Node[]; negated: boolean; position: Position }
  | { kind: 'exists'; name: string; position: Position }
  | { kind: 'call'; name: string; args: Node[]; position: Position };
