import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ProjectionStore } from '../engine/store.js';
import { HeraldError } from '../errors.js';
import { parseQuery } from '../http-input.js';
import type { ProjectionRow, ViewList, ViewRowPage } from './api-types.js';
import type { CompiledProjection } from './compile.js';

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  after: z.string().optional(),
  q: z.string().optional(),
});

/**
 * The read API of the views: `GET /api/views`, `GET /api/views/:name?limit&after&q` (rows by key,
 * `next` is the cursor for `after`), `GET /api/views/:name/:key`. Absent when no projection is
 * configured, so the dashboard shows Views as not enabled.
 */
export function registerViewRoutes(
  app: FastifyInstance,
  projections: CompiledProjection[],
  store: ProjectionStore,
): void {
  if (projections.length === 0) return;
  const known = (name: string) => {
    if (!projections.some((p) => p.name === name))
      throw new HeraldError(
        'NOT_FOUND',
        `no view named "${name}" (configured: ${projections.map((p) => p.name).join(', ')})`,
      );
  };

  app.get('/api/views', async (req): Promise<ViewList> => {
    const { q } = parseQuery(z.object({ q: z.string().optional() }), req.query);
    const counts = await store.counts();
    const cursors = await Promise.all(projections.map((p) => store.cursor(p.name)));
    return {
      views: projections
        .map((p, i) => ({ name: p.name, rows: counts[p.name] ?? 0, appliedThroughSeq: cursors[i] }))
        .filter((v) => !q || v.name.toLowerCase().includes(q.toLowerCase())),
    };
  });

  app.get<{ Params: { name: string } }>('/api/views/:name', async (req): Promise<ViewRowPage> => {
    known(req.params.name);
    const q = parseQuery(listQuery, req.query);
    const rows = await store.list(req.params.name, { limit: q.limit, after: q.after, q: q.q || undefined });
    return {
      rows: rows.map((r) => ({ key: r.key, value: r.value, updatedAt: r.updatedAt })),
      next: rows.length === q.limit ? rows[rows.length - 1]!.key : null,
    };
  });

  app.get<{ Params: { name: string; key: string } }>(
    '/api/views/:name/:key',
    async (req): Promise<ProjectionRow> => {
      known(req.params.name);
      const row = await store.get(req.params.name, req.params.key);
      if (!row)
        throw new HeraldError(
          'NOT_FOUND',
          `view "${req.params.name}" has no row with key "${req.params.key}"`,
        );
      return { key: row.key, value: row.value, updatedAt: row.updatedAt };
    },
  );
}
