import { createHmac } from 'node:crypto';

/** Requests shaped and signed the way Slack sends them to an app's Request URLs. */
export interface SignOptions {
  /** Seconds since the epoch; default now. */
  timestamp?: number;
  /** Overrides the computed signature (to test rejection). */
  signature?: string | null;
}

export function slackSignature(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export async function postSignedToSlackApp(
  baseUrl: string,
  path: '/slack/commands' | '/slack/interactions' | '/slack/events',
  secret: string,
  body: string,
  contentType: string,
  options: SignOptions = {},
): Promise<Response> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': contentType,
    'x-slack-request-timestamp': String(timestamp),
  };
  const signature =
    options.signature === undefined ? slackSignature(secret, timestamp, body) : options.signature;
  if (signature !== null) headers['x-slack-signature'] = signature;
  return fetch(`${baseUrl}${path}`, { method: 'POST', headers, body });
}

/** The form body of a slash command invocation. */
export function slashCommandBody(fields: {
  command: string;
  text: string;
  user_id: string;
  user_name?: string;
  response_url: string;
}): Record<string, string> {
  return {
    token: 'deprecated-verification-token',
    team_id: 'T0001',
    team_domain: 'herald-test',
    channel_id: 'C0000001',
    channel_name: 'general',
    user_name: fields.user_name ?? fields.user_id.toLowerCase(),
    api_app_id: 'A0001',
    is_enterprise_install: 'false',
    trigger_id: `${Date.now()}.1.abc`,
    ...fields,
  };
}

export const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

/** A `block_actions` payload for a button press in the App Home. */
export function blockActionPayload(userId: string, actionId: string, value: string): Record<string, unknown> {
  return {
    type: 'block_actions',
    team: { id: 'T0001', domain: 'herald-test' },
    user: { id: userId, username: userId.toLowerCase(), team_id: 'T0001' },
    api_app_id: 'A0001',
    token: 'deprecated-verification-token',
    container: { type: 'view', view_id: 'V0001' },
    trigger_id: `${Date.now()}.1.def`,
    view: { id: 'V0001', type: 'home', team_id: 'T0001' },
    actions: [
      {
        type: 'button',
        action_id: actionId,
        block_id: 'preferences-0',
        value,
        text: { type: 'plain_text', text: actionId },
        action_ts: `${Date.now() / 1000}`,
      },
    ],
  };
}

/** An `event_callback` envelope, e.g. for `app_home_opened`. */
export function eventCallback(event: Record<string, unknown>): Record<string, unknown> {
  return {
    token: 'deprecated-verification-token',
    team_id: 'T0001',
    api_app_id: 'A0001',
    type: 'event_callback',
    event_id: `Ev${Date.now()}`,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [{ team_id: 'T0001', user_id: 'U0BOT', is_bot: true }],
    event,
  };
}
