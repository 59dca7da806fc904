// Compiled by test/client/types.test.ts against the published types (dist/*.d.ts, found through
// the package's `exports`), as an application using Herald would be.
import { defineConfig } from 'herald';
import { createClient, type EventPage, HeraldApiError } from 'herald/client';

export default defineConfig(({ env }) => ({
  server: { port: 8080 },
  sources: { bot: { kind: 'http', routes: [{ path: '/notify', event: { type: 'notification.created' } }] } },
  channels: {
    chat: env.SLACK_BOT_TOKEN ? { kind: 'slack', token: env.SLACK_BOT_TOKEN } : { kind: 'inbox' },
    hook: { kind: 'webhook', url: 'https://example.com/hook', rateLimit: { perSecond: 5 } },
  },
  triggers: {
    all: { actions: [{ channel: 'chat', text: '{{ event.type }}' }], delivery: { maxAttempts: 3 } },
  },
}));

export const wrongTopLevelKey = defineConfig({
  // @ts-expect-error: no such top-level key
  chanels: {},
});

export const wrongServerKey = defineConfig({
  // @ts-expect-error: server has no `prot`
  server: { prot: 8080 },
});

export const wrongChannelKey = defineConfig({
  // @ts-expect-error: a webhook channel has no `uri`
  channels: { hook: { kind: 'webhook', uri: 'https://example.com' } },
});

export const unknownKind = defineConfig({
  // @ts-expect-error: there is no `carrier-pigeon` channel kind
  channels: { bird: { kind: 'carrier-pigeon' } },
});

export const wrongActionKey = defineConfig({
  channels: { box: { kind: 'inbox' } },
  // @ts-expect-error: no action kind has `tex`
  triggers: { t: { actions: [{ channel: 'box', tex: 'y' }] } },
});

export const wrongPortType = defineConfig({
  // @ts-expect-error: a port is a number
  server: { port: '8080' },
});

export async function useClient(): Promise<string[]> {
  const client = createClient({ url: 'http://127.0.0.1:8080', token: 'x', retries: 2 });
  const page: EventPage = await client.events.list({ type: 'a', limit: 10 });
  const accepted = await client.send({ source: 'app', type: 'order.placed', data: { id: 1 } });
  const batch = await client.send([{ source: 'app', type: 'a' }]);
  const total: number = batch.accepted + batch.duplicates;
  // @ts-expect-error: a single send answers { id, duplicate }, not a batch count
  const wrong: number = accepted.accepted;
  // @ts-expect-error: an event needs a type
  await client.send({ source: 'app' });
  try {
    await client.dlq.replay(1);
  } catch (err) {
    if (err instanceof HeraldApiError) return [err.code, String(err.status), String(total), String(wrong)];
  }
  return page.events.map((e) => e.event.id);
}
