import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { EventValidationError, HeraldError } from '../errors.js';
import type { ErrorBody } from './api-types.js';

export type { ErrorBody };

export function errorBody(err: HeraldError): ErrorBody {
  const body: ErrorBody = { error: err.message, code: err.code };
  if (err instanceof EventValidationError) {
    body.attribute = err.attribute;
    if (err.path !== undefined) body.path = err.path;
    if (err.limit !== undefined) body.limit = err.limit;
  } else if (err.details && typeof err.details === 'object' && 'attribute' in err.details) {
    body.attribute = String((err.details as { attribute: unknown }).attribute);
  } else if (err.details !== undefined && err.code === 'REQUEST_INVALID') body.details = err.details;
  return body;
}

export function errorHandler(logger: Logger) {
  return (err: FastifyError | HeraldError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof HeraldError) {
      if (err.status >= 500)
        logger.warn({ code: err.code, url: request.url, err: err.message }, 'request failed');
      return reply.status(err.status).send(errorBody(err));
    }
    const fe = err as FastifyError;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send({
        error: `request body is larger than the limit of ${fe.message.match(/\d+/)?.[0] ?? 'the configured'} bytes`,
        code: 'PAYLOAD_TOO_LARGE',
      });
    }
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      return reply.status(fe.statusCode).send({ error: fe.message, code: fe.code ?? 'REQUEST_INVALID' });
    }
    logger.error({ url: request.url, err: err.message, stack: err.stack }, 'unexpected error');
    return reply.status(500).send({ error: 'internal error', code: 'INTERNAL' });
  };
}

/**
 * Answers a request Node's HTTP parser refused before any route saw it (headers too large, too
 * slow, malformed) with the same JSON error body as every other refusal, then closes.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'HEADERS_TOO_LARGE', 'request headers are larger than the server accepts']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'REQUEST_TIMEOUT', 'the request did not arrive in time']
        : [400, 'REQUEST_INVALID', 'malformed HTTP request'];
  const body = JSON.stringify({ error: message, code });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
