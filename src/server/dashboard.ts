import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, posix, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerExtension } from './index.js';

/** Where `vite build web` writes the dashboard: the same from src/server (tsx) and dist/server. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

// Event data is arbitrary input: even if some of it were rendered as markup, no script but ours runs.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/**
 * Serves the built dashboard at `/`: files from web/dist with their content types; Vite's hashed
 * assets cached for good (their name changes with their content), index.html revalidated; any other
 * GET outside /api answered with index.html so the page's own routes (/events/42) survive a reload.
 * Without a build, `/` says how to make one instead of a bare 404.
 */
export function dashboardExtension(dir = DASHBOARD_DIR): ServerExtension {
  return (app: FastifyInstance) => {
    const root = normalize(dir.endsWith(sep) ? dir : dir + sep);
    const notFound = (method: string, url: string, reply: FastifyReply) =>
      reply.status(404).send({ error: `no route ${method} ${url.split('?')[0]}`, code: 'NOT_FOUND' });

    const sendIndex = async (reply: FastifyReply) => {
      const index = join(root, 'index.html');
      if (!existsSync(index)) {
        return reply
          .status(503)
          .type('text/plain; charset=utf-8')
          .send('The dashboard is not built. Run `npm run build` (npm install does it), then reload.\n');
      }
      return reply
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', CSP)
        .type(CONTENT_TYPES['.html']!)
        .send(await readFile(index));
    };

    app.get('/*', async (req, reply) => {
      const path = req.url.split('?')[0]!;
      let decoded: string;
      try {
        decoded = decodeURIComponent(path);
      } catch {
        return notFound(req.method, req.url, reply);
      }
      // Whatever spelling of an API path reached the catch-all is not a page: say so plainly.
      if (/^\/(api|metrics)(?![\w-])/i.test(posix.normalize(decoded.replace(/\/+/g, '/')))) {
        return notFound(req.method, req.url, reply);
      }
      const file = normalize(join(root, decoded));
      // A path that climbs out of the build folder is simply not one of its files.
      if (file.startsWith(root) && file !== root) {
        const info = await stat(file).catch(() => null);
        if (info?.isFile()) {
          const ext = extname(file);
          const hashed = decoded.startsWith('/assets/');
          reply
            .type(CONTENT_TYPES[ext] ?? 'application/octet-stream')
            .header('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache')
            .header('x-content-type-options', 'nosniff');
          return reply.send(await readFile(file));
        }
      }
      // A missing file is a 404 (a stale page asking for an old bundle); anything else is a page
      // (an event id in a page path may well contain a dot).
      if (CONTENT_TYPES[extname(decoded).toLowerCase()]) return notFound(req.method, req.url, reply);
      return sendIndex(reply);
    });
  };
}
