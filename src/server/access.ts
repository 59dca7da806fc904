import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { HeraldError } from '../errors.js';
import { bearerMatches } from './ingest-auth.js';

/**
 * Who may call a route. Decided when the route is registered and read from the route Fastify
 * matched, so no spelling of a URL (percent-encoding, dot segments, case) can change it.
 * - `admin`: the admin API and the dashboard's data (the admin token, or the laptop rules below).
 * - `metrics`: like admin, unless `server.publicMetrics`.
 * - `ingest`: event intake (the ingest token, or the route's own signature check when `signed`).
 * - `public`: health checks, the dashboard's files, Slack's signed endpoints.
 */
export type RouteAccess = 'admin' | 'metrics' | 'ingest' | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
    /** An ingest route that verifies a signature over its body instead of the ingest token. */
    signed?: boolean;
  }
}

export interface AccessPolicy {
  adminToken?: string;
  ingestToken?: string;
  publicMetrics: boolean;
  /** Extra Host names the admin API answers without a token (any case, IPv6 with or without brackets). */
  allowedHosts: readonly string[];
}

const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]'];
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Routes that declare no access are admin under /api and public elsewhere. */
export function classifyRoute(route: RouteOptions): void {
  const declared = route.config?.access;
  const url = route.url;
  const access: RouteAccess = declared ?? (url === '/api' || url.startsWith('/api/') ? 'admin' : 'public');
  route.config = { ...route.config, access };
}

/**
 * Checks a request against the access of the route it matched; throws the HeraldError to answer
 * with. `boundHost` is the address the server listens on.
 */
export function checkAccess(
  req: FastifyRequest,
  reply: FastifyReply,
  policy: AccessPolicy,
  boundHost: string | undefined,
): void {
  const config = req.routeOptions.config;
  const access = config?.access ?? 'public';
  if (access === 'ingest' && policy.ingestToken && !config.signed) {
    requireBearer(req, reply, policy.ingestToken, 'ingest token (HERALD_INGEST_TOKEN)');
  }
  if (access === 'admin' || (access === 'metrics' && !policy.publicMetrics)) {
    checkAdmin(req, reply, policy, boundHost);
  }
}

function checkAdmin(
  req: FastifyRequest,
  reply: FastifyReply,
  policy: AccessPolicy,
  boundHost: string | undefined,
): void {
  if (policy.adminToken) {
    requireBearer(req, reply, policy.adminToken, 'admin token (HERALD_ADMIN_TOKEN)');
    return;
  }
  // No token: only this machine's browser may call, and no other site through it. A page elsewhere
  // reaching Herald through a rebound DNS name sends its own name as Host; a cross-site form or
  // `text/plain` fetch cannot send `content-type: application/json` without a CORS preflight,
  // which Herald never grants.
  const host = hostName(req.headers.host);
  if (!host || !allowedHost(host, policy, boundHost)) {
    throw new HeraldError(
      'FORBIDDEN',
      `the admin API without an admin token answers only requests to localhost, 127.0.0.1, [::1] or server.allowedHosts, not Host ${JSON.stringify((host ?? req.headers.host ?? '').slice(0, 100))}`,
      { details: { attribute: 'host' } },
    );
  }
  if (!STATE_CHANGING.has(req.method)) return;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HeraldError(
      'REQUEST_INVALID',
      `admin requests that change state need content-type application/json, got ${type || 'none'}`,
      { status: 415, details: { attribute: 'content-type' } },
    );
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !sameOrigin(origin, req.headers.host!)) {
    throw new HeraldError('FORBIDDEN', 'admin requests from another site are refused', {
      details: { attribute: 'origin' },
    });
  }
}

function requireBearer(req: FastifyRequest, reply: FastifyReply, token: string, what: string): void {
  if (bearerMatches(req.headers.authorization, token)) return;
  reply.header('www-authenticate', 'Bearer');
  throw new HeraldError('UNAUTHORIZED', `this endpoint needs Authorization: Bearer <${what}>`);
}

/** The host part of a Host header, lower case, brackets kept around IPv6; null when malformed. */
export function hostName(header: string | undefined): string | null {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.exec(header ?? '');
  if (!match) return null;
  return match[1]!.toLowerCase().replace(/\.$/, '');
}

/** `::1` → `[::1]`, as a Host header writes it. */
export function asHostHeaderName(address: string): string {
  const name = address.toLowerCase();
  return isIP(name) === 6 ? `[${name}]` : name;
}

function allowedHost(host: string, policy: AccessPolicy, boundHost: string | undefined): boolean {
  if (LOOPBACK_HOSTS.includes(host)) return true;
  if (policy.allowedHosts.some((allowed) => asHostHeaderName(allowed) === host)) return true;
  // Listening on every interface says nothing about the names Herald is reached by.
  return boundHost !== undefined && !isUnspecified(boundHost) && asHostHeaderName(boundHost) === host;
}

function sameOrigin(origin: string, hostHeader: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false; // `null` (a sandboxed frame, a file) and anything unparseable
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return false;
  try {
    return new URL(`${parsed.protocol}//${hostHeader}`).host === parsed.host;
  } catch {
    return false;
  }
}

function isUnspecified(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '[::]';
}

/** Whether listening on `host` keeps Herald reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (name === 'localhost') return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) === 6) return name === '::1' || /^::ffff:127\./.test(name);
  return false;
}
