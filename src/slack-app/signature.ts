import bolt from '@slack/bolt';
import { SLACK_WINDOW_S } from './replay.js';

/**
 * Slack's v0 request signature: HMAC-SHA256 of `v0:<timestamp>:<raw body>` keyed with the signing
 * secret, compared in constant time, and the timestamp within 5 minutes of now either way.
 * Bolt's maintained implementation does the work and refuses stale timestamps; it accepts any
 * timestamp in the future, which would let a request signed ahead of time be used for as long
 * as its timestamp says, so those are refused here.
 */
export function isValidSlackSignature(
  signingSecret: string,
  rawBody: string,
  headers: { signature: unknown; timestamp: unknown },
  nowMs = Date.now(),
): boolean {
  const timestamp = Number(headers.timestamp);
  if (typeof headers.signature !== 'string' || !Number.isFinite(timestamp)) return false;
  if (timestamp > Math.floor(nowMs / 1000) + SLACK_WINDOW_S) return false;
  return bolt.isValidSlackRequest({
    signingSecret,
    body: rawBody,
    headers: { 'x-slack-signature': headers.signature, 'x-slack-request-timestamp': timestamp },
    nowMilliseconds: nowMs,
  });
}
