/**
 * The answers of the views API (`/api/views`) as they travel in JSON. Types only:
 * src/server/api-types.ts re-exports them for the dashboard and the client.
 */
import type { ProjectionRow } from '../engine/store.js';

export type { ProjectionRow };

/** `GET /api/views`: each view, its row count and how far into the log it has applied. */
export interface ViewList {
  views: { name: string; rows: number; appliedThroughSeq: number }[];
}

/** `GET /api/views/:name`: rows by key; `next` is the `after` cursor of the following page. */
export interface ViewRowPage {
  rows: ProjectionRow[];
  next: string | null;
}
