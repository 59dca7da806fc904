// notify-router as code: the same config as herald.yaml, typed by defineConfig.
// Run it with: herald start --config examples/notify-router/herald.config.ts
// Code reads the environment itself (`${VAR}` is not interpolated here): the function is handed
// the environment Herald started with. Where herald.yaml has a `fallback`, the code picks the
// block itself.
import { defineConfig } from 'herald';

export default defineConfig(({ env }) => ({
  sources: {
    bot: {
      kind: 'http',
      routes: [
        {
          path: '/notify',
          schema: {
            type: 'object',
            required: ['topic', 'description'],
            properties: {
              topic: { type: 'string', minLength: 1 },
              description: { type: 'string' },
            },
          },
          event: { type: 'notification.created', subject: '{{ body.topic }}' },
        },
      ],
    },
  },

  channels: {
    'slack-sales': env.SLACK_BOT_TOKEN ? { kind: 'slack', token: env.SLACK_BOT_TOKEN } : { kind: 'inbox' },
    'email-pricing': env.SMTP_URL
      ? { kind: 'email', url: env.SMTP_URL, from: env.HERALD_MAIL_FROM || 'Herald <herald@localhost>' }
      : { kind: 'inbox' },
  },

  triggers: {
    'sales-to-slack': {
      description: 'Sales requests go to the #sales Slack channel.',
      filter: { exact: { type: 'notification.created', subject: 'sales' } },
      actions: [
        {
          channel: 'slack-sales',
          to: env.SALES_SLACK_CHANNEL || '#sales',
          text: 'New sales request: {{ event.data.description }}',
        },
      ],
    },
    'pricing-to-email': {
      description: 'Pricing questions are emailed to the pricing team.',
      filter: { exact: { type: 'notification.created', subject: 'pricing' } },
      actions: [
        {
          channel: 'email-pricing',
          to: env.PRICING_EMAIL || 'pricing@example.com',
          subject: 'Pricing request',
          text: '{{ event.data.description }}',
        },
      ],
    },
  },
}));
