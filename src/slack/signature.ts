import bolt from '@slack/bolt';

/**
 * Slack's v0 request signature: HMAC-SHA256 of `v0:<timestamp>:<raw body>` keyed with the signing
 * secret, compared in constant time, and the timestamp within 5 minutes of now (replays).
 * Bolt's maintained implementation does the work; this is the one place Herald calls it.
 */
export function isValidSlackSignature(
  signingSecret: string,
  rawBody: string,
  headers: { signature: unknown; timestamp: unknown },
  nowMs = Date.now(),
): boolean {
  const timestamp = Number(headers.timestamp);
  if (typeof headers.signature !== 'string' || !Number.isFinite(timestamp)) return false;
  return bolt.isValidSlackRequest({
    signingSecret,
    body: rawBody,
    headers: { 'x-slack-signature': headers.signature, 'x-slack-request-timestamp': timestamp },
    nowMilliseconds: nowMs,
  });
}
