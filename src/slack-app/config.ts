import { z } from 'zod';
import { templateSchema } from '../templates/index.js';

/** How a family of subscription keys is shown to people: a name instead of `product:1`. */
export const keyLabelSchema = z
  .strictObject({
    prefix: z
      .string()
      .min(1)
      .max(200)
      .describe(
        'The keys this label is for: those starting with it, e.g. "product:". The rest of the key is `id` in `text`.',
      ),
    view: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A projection (materialized view) whose row with key `id` is looked up when the label is shown; `row` in `text`. A key whose row is gone is shown as the key.',
      ),
    text: templateSchema().describe(
      'The label (Liquid; `key`, `id` and `row` in scope), e.g. "{{ row.name }}". When it renders empty, the key is shown.',
    ),
  })
  .describe('A label for subscription keys that start with `prefix`.');

export const slackAppSchema = z
  .strictObject({
    token: z.string().min(1).describe('Bot token (xoxb-…), usually "${SLACK_BOT_TOKEN}".'),
    signingSecret: z
      .string()
      .min(1)
      .describe(
        'Signing secret that every request from Slack is verified against, usually "${SLACK_SIGNING_SECRET}".',
      ),
    appToken: z
      .string()
      .optional()
      .describe('App-level token (xapp-…). When set, Herald connects over Socket Mode instead of HTTP.'),
    apiUrl: z
      .string()
      .optional()
      .describe(
        'Web API base URL (default SLACK_API_URL or https://slack.com/api/): any Slack-compatible server.',
      ),
    command: z
      .string()
      .regex(/^\/[a-z0-9_-]+$/, 'a slash command looks like /herald')
      .default('/herald')
      .describe('The slash command Herald answers.'),
    subscribeKey: z
      .string()
      .default('email:{{ email }}')
      .describe('What `/herald subscribe [email]` subscribes to; `{{ email }}` is the address.'),
    search: z
      .strictObject({
        view: z
          .string()
          .min(1)
          .describe('The projection (materialized view) `/herald search <words>` looks in.'),
        key: z
          .string()
          .default('product:{{ key }}')
          .describe(
            'Subscription key of a row (Liquid; `key` and `row` in scope) that Notify me / Stop toggles.',
          ),
        title: z.string().default('{{ key }}').describe('Row title (Liquid; `key`, `row`).'),
        text: z.string().default('').describe('Row details (Liquid; `key`, `row`), e.g. price and stock.'),
        limit: z.number().int().positive().max(20).default(10).describe('Rows shown.'),
      })
      .optional()
      .describe('`/herald search`: find rows of a view and follow them with Notify me / Stop buttons.'),
    labels: z
      .array(keyLabelSchema)
      .max(20)
      .default([])
      .describe(
        'How the keys people follow are named in the App Home and `/herald status`: the first label whose `prefix` a key starts with names it (e.g. a product by its current name from a view); keys no label covers are shown as they are. At most 20.',
      ),
    home: z
      .strictObject({
        renderer: z
          .enum(['feed', 'ci-feed'])
          .default('feed')
          .describe(
            '`feed` lists recent events of the keys the person follows; `ci-feed` groups CI runs per PR.',
          ),
        title: z.string().default('Herald').describe('Heading of the App Home.'),
        line: z
          .string()
          .default('*{{ event.type }}* {{ event.subject }}')
          .describe('`feed` renderer: one line per event (Liquid; `event` in scope).'),
        limit: z.number().int().positive().max(90).default(30).describe('Items shown.'),
      })
      .default({
        renderer: 'feed',
        title: 'Herald',
        line: '*{{ event.type }}* {{ event.subject }}',
        limit: 30,
      })
      .describe('The App Home view.'),
  })
  .describe(
    'The Slack app: slash command, App Home and interactivity (HTTP on Herald’s port, or Socket Mode).',
  );
export type SlackAppConfig = z.infer<typeof slackAppSchema>;
