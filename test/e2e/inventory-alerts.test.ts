import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { eventually, repoRoot, startTestHerald, type TestHerald } from '../support/herald.js';
import { dropSlot, PG_URL, pgClient, uniqueSuffix } from '../support/postgres.js';
import { type SlackCall, type SlackServer, startSlackServer } from '../support/slack/index.js';
import {
  blockActionPayload,
  eventCallback,
  form,
  postSignedToSlackApp,
  slashCommandBody,
} from '../support/slack/requests.js';

const SECRET = 'inventory-signing-secret';
const recipe = join(repoRoot, 'examples/inventory-alerts');

interface Section {
  type: string;
  block_id?: string;
  text?: { text: string };
  accessory?: { action_id: string; text: { text: string }; value: string };
}

describe('inventory-alerts recipe end to end (PostgreSQL CDC → view → Slack search, toggles and DMs)', () => {
  const suffix = uniqueSuffix();
  const schema = `inventory_${suffix}`;
  const slot = `herald_inv_${suffix}`;
  let db: pg.Client;
  let slack: SlackServer;
  let herald: TestHerald;

  before(async () => {
    db = await pgClient();
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(
      `CREATE TABLE ${schema}.products (id INT PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(10,2) NOT NULL, stock_quantity INT NOT NULL)`,
    );
    await db.query(`ALTER TABLE ${schema}.products REPLICA IDENTITY FULL`);
    await db.query(
      `INSERT INTO ${schema}.products VALUES (1, 'Red Kettle', 40.00, 5), (2, 'Blue Kettle', 42.00, 0), (3, 'Teapot', 25.00, 12)`,
    );
    slack = await startSlackServer();
    slack.addUser({ id: 'UALICE', name: 'alice', email: 'alice@example.com' });
    slack.addUser({ id: 'UBOB', name: 'bob', email: 'bob@example.com' });
    herald = await startTestHerald(readFileSync(join(recipe, 'herald.yaml'), 'utf8'), {
      env: {
        INVENTORY_DATABASE_URL: PG_URL,
        INVENTORY_SCHEMA: schema,
        INVENTORY_SLOT: slot,
        SLACK_BOT_TOKEN: slack.token,
        SLACK_SIGNING_SECRET: SECRET,
        SLACK_API_URL: slack.url,
      },
    });
  });
  after(async () => {
    await herald?.close();
    await slack?.close();
    await dropSlot(db, slot).catch(() => undefined);
    await db.query(`DROP PUBLICATION IF EXISTS ${slot}`);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
  });

  const command = async (userId: string, text: string) => {
    const responseUrl = slack.createResponseUrl();
    const res = await postSignedToSlackApp(
      herald.url,
      '/slack/commands',
      SECRET,
      form(slashCommandBody({ command: '/herald', text, user_id: userId, response_url: responseUrl })),
      'application/x-www-form-urlencoded',
    );
    assert.equal(res.status, 200);
    return eventually(
      () => slack.responses.get(responseUrl)?.[0] as { blocks?: Section[]; text: string } | undefined,
    );
  };
  const press = async (userId: string, button: NonNullable<Section['accessory']>) => {
    const payload = {
      ...blockActionPayload(userId, button.action_id, button.value),
      container: { type: 'message', message_ts: '1.1', channel_id: 'C0000001', is_ephemeral: true },
      response_url: slack.createResponseUrl(),
    };
    const res = await postSignedToSlackApp(
      herald.url,
      '/slack/interactions',
      SECRET,
      form({ payload: JSON.stringify(payload) }),
      'application/x-www-form-urlencoded',
    );
    assert.equal(res.status, 200);
    return eventually(
      () => slack.responses.get(payload.response_url)?.[0] as { blocks: Section[] } | undefined,
    );
  };
  const dmsTo = (user: string): SlackCall[] =>
    slack
      .callsTo('chat.postMessage')
      .filter((c) => c.args.channel === `D${user.slice(1)}` || c.args.channel === user);
  const blockText = (c: SlackCall) =>
    JSON.stringify(typeof c.args.blocks === 'string' ? JSON.parse(c.args.blocks) : c.args.blocks);

  it('search answers from the view with Notify me buttons; Notify me subscribes and the answer flips to Stop', async () => {
    // The snapshot reaches the view first.
    await eventually(async () => {
      const res = await herald.get('/api/views/products/3');
      return res.status === 200;
    }, 20_000);
    const answer = await command('UALICE', 'search kettle');
    const rows = answer.blocks ?? [];
    assert.deepEqual(
      rows.map((b) => b.text?.text),
      ['*Red Kettle*\n$40.00 · 5 in stock', '*Blue Kettle*\n$42.00 · 0 in stock'],
    );
    assert.deepEqual(
      rows.map((b) => b.accessory?.text.text),
      ['Notify me', 'Notify me'],
    );
    const red = rows.find((b) => b.text?.text.includes('Red Kettle'))!;
    const blue = rows.find((b) => b.text?.text.includes('Blue Kettle'))!;
    const updated = await press('UALICE', red.accessory!);
    assert.equal(
      updated.blocks.find((b) => b.text?.text.includes('Red Kettle'))?.accessory?.text.text,
      'Stop',
    );
    await press('UALICE', blue.accessory!);
    const keys = ((await (await herald.get('/api/subscribers/slack:UALICE')).json()) as { keys: string[] })
      .keys;
    assert.deepEqual(keys, ['product:1', 'product:2']);
  });

  it('a price change in PostgreSQL → a DM to the subscriber only, with old and new price and the percentage', async () => {
    await db.query(`UPDATE ${schema}.products SET price = 50.00 WHERE id = 1`);
    const dm = await eventually(
      () => dmsTo('UALICE').find((c) => String(c.args.text).includes('Red Kettle')),
      20_000,
    );
    assert.equal(dm.args.text, 'Price of Red Kettle: $40.00 → $50.00');
    assert.match(blockText(dm), /now costs \*\$50\.00\* \(was \$40\.00, \+25%\)/);
    assert.equal(dmsTo('UBOB').length, 0, 'only subscribers hear about it');
  });

  it('restock (0 → more) sends the back-in-stock DM; a change of other fields sends nothing', async () => {
    const before = dmsTo('UALICE').length;
    await db.query(`UPDATE ${schema}.products SET name = 'Blue Kettle XL' WHERE id = 2`);
    await db.query(`UPDATE ${schema}.products SET stock_quantity = 7 WHERE id = 2`);
    const dm = await eventually(
      () => dmsTo('UALICE').find((c) => String(c.args.text).includes('back in stock')),
      20_000,
    );
    assert.equal(dm.args.text, 'Blue Kettle XL is back in stock (7)');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(dmsTo('UALICE').length, before + 1, 'the rename alone sent no DM');
  });

  it('sold out (n → 0) sends the sold-out DM to subscribers only; a later price change does not repeat it', async () => {
    const before = dmsTo('UALICE').length;
    await db.query(`UPDATE ${schema}.products SET stock_quantity = 0 WHERE id = 1`);
    const dm = await eventually(
      () => dmsTo('UALICE').find((c) => String(c.args.text).includes('sold out')),
      20_000,
    );
    assert.equal(dm.args.text, 'Red Kettle is sold out');
    assert.match(blockText(dm), /\*Red Kettle\* is sold out \(was 5 in stock\)/);
    assert.equal(dmsTo('UBOB').length, 0, 'only subscribers hear about it');

    // Still 0 in stock: the price DM only, not "sold out" again.
    await db.query(`UPDATE ${schema}.products SET price = 48.00 WHERE id = 1`);
    await eventually(
      () => dmsTo('UALICE').find((c) => String(c.args.text).includes('$50.00 → $48.00')),
      20_000,
    );
    await new Promise((r) => setTimeout(r, 300));
    const texts = dmsTo('UALICE')
      .slice(before)
      .map((c) => String(c.args.text));
    assert.deepEqual(texts, ['Red Kettle is sold out', 'Price of Red Kettle: $50.00 → $48.00']);
  });

  it('the App Home and /herald status list what you follow by the product’s current name, not its key', async () => {
    const seen = slack.callsTo('views.publish').filter((c) => c.args.user_id === 'UALICE').length;
    const res = await postSignedToSlackApp(
      herald.url,
      '/slack/events',
      SECRET,
      JSON.stringify(
        eventCallback({ type: 'app_home_opened', user: 'UALICE', channel: 'DALICE', tab: 'home' }),
      ),
      'application/json',
    );
    assert.equal(res.status, 200);
    const publish = await eventually(
      () => slack.callsTo('views.publish').filter((c) => c.args.user_id === 'UALICE')[seen],
      10_000,
    );
    const view = (
      typeof publish.args.view === 'string' ? JSON.parse(publish.args.view) : publish.args.view
    ) as {
      blocks: Section[];
    };
    const following = view.blocks.filter((b) => b.accessory?.action_id === 'sub:off');
    assert.deepEqual(
      following.map((b) => b.text?.text),
      ['*Red Kettle*', '*Blue Kettle XL*'],
      'each followed product by its name, as it is now (product 2 was renamed)',
    );
    const shown = view.blocks.map((b) => b.text?.text ?? '').join('\n');
    assert.doesNotMatch(shown, /product:\d/);
    assert.deepEqual(
      following.map((b) => JSON.parse(b.accessory!.value).key),
      ['product:1', 'product:2'],
      'Stop still unsubscribes the key',
    );

    const status = await command('UALICE', 'status');
    assert.match(status.text, /^You follow \*Red Kettle\*, \*Blue Kettle XL\*\./);
  });

  it('Stop unsubscribes: the next price change reaches nobody', async () => {
    const answer = await command('UALICE', 'search red');
    const red = (answer.blocks ?? []).find((b) => b.text?.text.includes('Red Kettle'))!;
    assert.equal(red.accessory?.text.text, 'Stop');
    await press('UALICE', red.accessory!);
    const before = dmsTo('UALICE').length;
    await db.query(`UPDATE ${schema}.products SET price = 45.00 WHERE id = 1`);
    await eventually(async () => {
      const v = (await (await herald.get('/api/views/products/1')).json()) as { value: { price: string } };
      return v.value.price === '45.00';
    }, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(dmsTo('UALICE').length, before);
  });
});
