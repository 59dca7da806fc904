/**
 * A CloudEvent 1.0 as Herald holds it everywhere inside: context attributes, extensions and data
 * side by side, exactly as the JSON event format lays them out.
 */
export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype?: string;
  dataschema?: string;
  /** Present when the payload is JSON or text; mutually exclusive with `data_base64`. */
  data?: unknown;
  /** Binary payload, base64-encoded (JSON event format §3.1). */
  data_base64?: string;
  /** Extension attributes: lower-case a-z0-9 names, values string | number | boolean. */
  [extension: string]: unknown;
}

/** The attributes the spec defines; anything else on an event is an extension. */
export const CONTEXT_ATTRIBUTES = [
  'specversion',
  'id',
  'source',
  'type',
  'subject',
  'time',
  'datacontenttype',
  'dataschema',
] as const;

export const REQUIRED_ATTRIBUTES = ['specversion', 'id', 'source', 'type'] as const;
