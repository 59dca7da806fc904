import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { DEMO_CONFIG } from '../../src/app.js';
import { DASHBOARD_DIR } from '../../src/server/dashboard.js';
import { eventually, repoRoot, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

// The dashboard in Debian's Chromium (never a downloaded browser), against a real Herald: what an
// operator sees, clicks and is refused. Screenshots of every page go to test-output/screenshots;
// HERALD_UPDATE_DOCS_SCREENSHOT=1 also refreshes docs/dashboard.png for the README.

const CHROMIUM = '/usr/bin/chromium';
/** How much wider than the window the page is (runs in the page). */
const OVERFLOW = 'document.documentElement.scrollWidth - window.innerWidth';
const SHOTS = join(repoRoot, 'test-output', 'screenshots');

async function launch(): Promise<Browser> {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: install it with apt-get install chromium (.ci/run does)`,
  );
  assert.ok(
    existsSync(join(DASHBOARD_DIR, 'index.html')),
    'the dashboard is not built: run `npm run build` (npm test does) before this test',
  );
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Fails the test on any script error in the page: a blank screen must not pass. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  return errors;
}

const notify = (herald: TestHerald, topic: string, description: string) =>
  herald.post('/notify', { topic, description }).then((r) => {
    assert.equal(r.status, 202);
    return r.json() as Promise<{ id: string }>;
  });

describe('dashboard', { timeout: 120_000 }, () => {
  let browser: Browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  describe('with the demo config', () => {
    let herald: TestHerald;
    before(async () => {
      herald = await startTestHerald(readFileSync(DEMO_CONFIG, 'utf8'));
    });
    after(async () => {
      await herald.close();
    });

    it('shows /notify events as they arrive, with the triggers they matched, and each one with its delivery', async () => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      const errors = watchErrors(page);
      await page.goto(herald.url);
      await page.getByTestId('connection').getByText('live').waitFor();

      const { id } = await notify(herald, 'sales', 'Customer asks for a quote');
      await notify(herald, 'pricing', 'Is there an education discount?');
      await notify(herald, 'legal', 'Nobody listens to this topic');

      const rows = page.getByTestId('events').locator('tbody tr');
      await rows.filter({ hasText: 'sales-to-slack' }).waitFor();
      await rows.filter({ hasText: 'pricing-to-email' }).waitFor();
      const legal = rows.filter({ hasText: 'legal' });
      await legal.waitFor();
      assert.match(await legal.innerText(), /none/, 'an event no trigger matched says so');
      // Deliveries report back on the same stream.
      await rows.filter({ hasText: 'slack-sales: delivered' }).waitFor();
      assert.equal(await rows.count(), 3);
      await shot(page, 'live-events');
      if (process.env.HERALD_UPDATE_DOCS_SCREENSHOT) {
        await notify(herald, 'pricing', 'Volume pricing for 500 seats?');
        await notify(herald, 'sales', 'Renewal call next Tuesday');
        await rows.filter({ hasText: 'slack-sales: delivered' }).nth(1).waitFor();
        await rows.filter({ hasText: 'email-pricing: delivered' }).nth(1).waitFor();
        await page.waitForTimeout(1600); // the new-row highlight fades
        await page.screenshot({
          path: join(repoRoot, 'docs', 'dashboard.png'),
          clip: { x: 0, y: 0, width: 1200, height: 440 },
        });
      }

      // The oldest sales row is the first event sent.
      await rows
        .filter({ hasText: 'sales-to-slack' })
        .last()
        .getByRole('link', { name: 'notification.created' })
        .click();
      await page.getByTestId('attributes').getByText(id).waitFor();
      const delivery = page.getByTestId('delivery');
      await delivery.and(page.locator('[data-status=delivered]')).waitFor();
      const card = await delivery.innerText();
      assert.match(card, /slack-sales/);
      assert.match(card, /#sales/);
      assert.match(card, /attempt 1 of 8/);
      assert.match(card, /New sales request: Customer asks for a quote/, 'the rendered message is shown');
      assert.match(
        await page.locator('pre.json').first().innerText(),
        /"description": "Customer asks for a quote"/,
      );
      await shot(page, 'event-detail');

      // "Why?": the trigger that matched and whom it notified; the one that did not, and why not.
      const why = page.getByTestId('why');
      const matched = why.getByTestId('why-trigger').and(page.locator('[data-matched=true]'));
      await matched.getByText(': delivered', { exact: false }).waitFor();
      assert.match(
        await matched.innerText(),
        /sales-to-slack[\s\S]*action 0 → slack-sales[\s\S]*#sales: delivered/,
      );
      assert.match(
        await why.getByTestId('why-trigger').filter({ hasText: 'pricing-to-email' }).innerText(),
        /did not match[\s\S]*exact\.subject: wanted "pricing", got "sales"/,
      );
      assert.match(await why.innerText(), /Evaluated against the current config/);

      // An event no trigger matched says so, trigger by trigger.
      const salesPage = page.url();
      await page.goto(herald.url);
      await rows.filter({ hasText: 'legal' }).getByRole('link', { name: 'notification.created' }).click();
      await why.getByTestId('why-summary').waitFor();
      assert.match(await why.getByTestId('why-summary').innerText(), /No trigger matches this event/);
      assert.deepEqual(await why.getByTestId('why-clause').allInnerTexts(), [
        'exact.subject: wanted "sales", got "legal"',
        'exact.subject: wanted "pricing", got "legal"',
      ]);
      await shot(page, 'event-why');
      if (process.env.HERALD_UPDATE_DOCS_SCREENSHOT)
        await why.screenshot({ path: join(repoRoot, 'docs', 'dashboard-why.png') });
      await page.goto(salesPage);

      // A reload of a page path lands on the same page (Herald answers it with the app).
      await page.reload();
      await page.getByTestId('attributes').getByText(id).waitFor();
      assert.deepEqual(errors, []);
      await page.close();
    });

    it('filters the live tail by a CESQL expression, and names a bad expression', async () => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      await page.goto(herald.url);
      await page.getByTestId('connection').getByText('live').waitFor();
      await page.locator('input[name=sql]').fill("subject LIKE 'urgent%' AND type = 'notification.created'");
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByTestId('connection').getByText('live').waitFor();
      await notify(herald, 'routine', 'a routine question');
      await notify(herald, 'urgent-ops', 'the site is down');
      const rows = page.getByTestId('events').locator('tbody tr');
      await eventually(async () => (await rows.count()) === 1, 5000, 'the one matching event');
      await page.getByRole('link', { name: 'notification.created' }).first().click();
      await page.getByText('the site is down').first().waitFor();
      await page.goBack();

      await page.locator('input[name=sql]').fill('subject = ');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page
        .getByRole('alert')
        .getByText(/sql: .*line 1, column/)
        .waitFor();
      await page.close();
    });

    it('shows the inbox, health, config and the pages of areas not running here', async () => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      const errors = watchErrors(page);
      await notify(herald, 'pricing', 'Inbox check');
      await page.goto(`${herald.url}/inbox`);
      await page.getByTestId('inbox').getByText('Inbox check').first().waitFor();
      assert.match(await page.getByTestId('inbox').innerText(), /pricing@example\.com/);
      await shot(page, 'inbox');

      await page.getByRole('link', { name: 'Health' }).click();
      const channels = page.getByTestId('channels');
      await channels.getByText('slack-sales').waitFor();
      assert.match(await page.getByTestId('parts').innerText(), / store · embedded bus · up /);
      assert.match(await channels.innerText(), /SLACK_BOT_TOKEN not set/);
      assert.match(await channels.innerText(), /ok/);
      assert.match(await page.getByTestId('sources').innerText(), /bot\s+http\s+running/);
      await shot(page, 'health');

      const created = await herald.post('/api/subscribers', { id: 'slack:UDASH', email: 'dash@example.com' });
      assert.equal(created.status, 201);
      await herald.post('/api/subscribers/slack:UDASH/subscriptions', { key: 'topic:sales' });
      await page.getByRole('link', { name: 'Subscribers' }).click();
      await page.getByText('dash@example.com').waitFor();
      assert.match(await page.locator('main').innerText(), /topic:sales/);
      await shot(page, 'subscribers');
      await page.getByRole('link', { name: 'Views' }).click();
      await page.getByTestId('not-enabled').getByText('Views are not enabled').waitFor();
      await shot(page, 'views');

      await page.getByRole('link', { name: 'Config' }).click();
      await page.getByTestId('config').getByText('sales-to-slack').waitFor();
      assert.match(await page.getByTestId('config').innerText(), /"token": "••••"/);
      await shot(page, 'config');
      assert.deepEqual(
        errors.filter((e) => !/404/.test(e)),
        [],
      );
      await page.close();
    });

    it('is usable at 400 px: nothing wider than the window, rows still open their event', async () => {
      const page = await browser.newPage({ viewport: { width: 400, height: 800 } });
      await page.goto(herald.url);
      await page.getByTestId('events').locator('tbody tr').first().waitFor();
      const overflow = (await page.evaluate(OVERFLOW)) as number;
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 400 px window`);
      await shot(page, 'live-events-400px');
      await page.getByRole('link', { name: 'Dead letters' }).click();
      await page.getByRole('heading', { name: 'Dead letters' }).waitFor();
      const dlqOverflow = (await page.evaluate(OVERFLOW)) as number;
      assert.ok(dlqOverflow <= 0, `the dead-letter page is ${dlqOverflow} px too wide`);
      await page.close();
    });
  });

  describe('quiet hours', () => {
    let herald: TestHerald;
    // A period around the real time (no injectable clock): began an hour ago, ends in two hours.
    const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);
    const to = hhmm(Date.now() + 2 * 3_600_000);
    before(async () => {
      herald = await startTestHerald(`
channels:
  box: { kind: inbox }
triggers:
  night-page:
    actions:
      - channel: box
        to: "#ops"
        text: "page"
        quietHours: { from: "${hhmm(Date.now() - 3_600_000)}", to: "${to}", timezone: UTC }
`);
    });
    after(async () => {
      await herald.close();
    });

    it('shows a held delivery with the time it is due and why, and says so in the Why? panel', async () => {
      const res = await herald.post(
        '/events',
        { specversion: '1.0', id: 'quiet-1', source: 'dashboard', type: 'ops.page' },
        { 'content-type': 'application/cloudevents+json' },
      );
      assert.equal(res.status, 202);
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      const errors = watchErrors(page);
      await page.goto(`${herald.url}/events/id/quiet-1`);
      const card = page.getByTestId('delivery').and(page.locator('[data-status=pending]'));
      await card.getByTestId('delivery-note').waitFor();
      assert.match(await card.innerText(), new RegExp(`Delayed until [^\\n]+ · held until ${to} UTC`));
      const why = page.getByTestId('why');
      await why.getByText('held until', { exact: false }).waitFor();
      assert.match(
        await why.innerText(),
        new RegExp(`#ops: pending: first attempt due \\S+, held until ${to} UTC`),
      );
      await shot(page, 'event-held');
      assert.deepEqual(errors, []);
      await page.close();
    });
  });

  describe('dead letters', () => {
    let herald: TestHerald;
    let sink: HttpSink;
    const secret = `whsec_${Buffer.from('dashboard-test-signing-secret').toString('base64')}`;
    before(async () => {
      sink = await startHttpSink();
      herald = await startTestHerald(
        `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: order.created, subject: "{{ body.topic }}" }
channels:
  hook: { kind: webhook, url: "${sink.url}", secret: "\${HOOK_SECRET}" }
triggers:
  orders-to-hook:
    filter: { exact: { type: order.created } }
    actions:
      - channel: hook
    delivery: { maxAttempts: 1 }
`,
        { env: { HOOK_SECRET: secret } },
      );
    });
    after(async () => {
      await herald.close();
      await sink.close();
    });

    const deadCount = async () =>
      ((await (await herald.get('/api/status')).json()) as { deadLetters: number }).deadLetters;

    it('replays one from the page and then every dead letter matching a filter, after a confirmation', async () => {
      sink.setDefault({ status: 400, body: '{"error":"unknown customer"}' });
      await notify(herald, 'o-1', 'first');
      await eventually(async () => (await deadCount()) === 1, 10_000, 'the webhook delivery in the DLQ');

      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      const errors = watchErrors(page);
      await page.goto(`${herald.url}/dlq`);
      const table = page.getByTestId('dead-letters');
      await table.getByText('hook').first().waitFor();
      assert.match(await table.innerText(), /400/, 'the reason says what the endpoint answered');
      await shot(page, 'dead-letters');

      sink.setDefault({ status: 200, body: '{"ok":true}' });
      await table.getByRole('button', { name: 'Replay' }).click();
      await page
        .getByTestId('replay-result')
        .getByText(/queued again/)
        .waitFor();
      await sink.waitFor(2);
      await page.getByText('The dead-letter queue is empty').waitFor();

      // The event page shows both attempts of the delivery: failed, then delivered after the replay.
      const { events } = (await (await herald.get('/api/events?limit=1')).json()) as {
        events: { seq: number }[];
      };
      await page.goto(`${herald.url}/events/${events[0]!.seq}`);
      await page.locator('[data-testid=delivery][data-status=delivered]').waitFor();
      const attempts = await page.locator('table.attempts').innerText();
      assert.match(attempts, /failed/);
      assert.match(attempts, /delivered/);

      // Two more fail; "replay all" asks first, then says how many it replayed.
      sink.setDefault({ status: 400, body: '{"error":"unknown customer"}' });
      await notify(herald, 'o-2', 'second');
      await notify(herald, 'o-3', 'third');
      await eventually(async () => (await deadCount()) === 2, 10_000, 'two dead letters');
      await page.goto(`${herald.url}/dlq`);
      await page.locator('select[name=channel]').selectOption('hook');
      await page.getByRole('button', { name: 'Apply' }).click();
      await eventually(async () => (await table.locator('tbody tr').count()) === 2, 5000, 'two rows');
      sink.setDefault({ status: 200 });
      await page.getByRole('button', { name: 'Replay all matching…' }).click();
      const confirm = page.getByRole('alertdialog');
      assert.match(await confirm.innerText(), /Replay 2 dead letters matching channel = hook/);
      assert.equal(await deadCount(), 2, 'nothing is replayed before the confirmation');
      await shot(page, 'dead-letters-confirm');
      await confirm.getByRole('button', { name: 'Yes, replay them' }).click();
      await page.getByTestId('replay-result').getByText('Replayed 2 deliveries (channel = hook).').waitFor();
      await sink.waitFor(6);
      await eventually(async () => (await deadCount()) === 0, 10_000, 'an empty DLQ');

      // Replay from the event's own page: it follows the delivery until it is delivered.
      sink.setDefault({ status: 400, body: '{"error":"unknown customer"}' });
      await notify(herald, 'o-4', 'fourth');
      await eventually(async () => (await deadCount()) === 1, 10_000, 'one dead letter');
      const latest = (await (await herald.get('/api/events?limit=1')).json()) as {
        events: { seq: number }[];
      };
      await page.goto(`${herald.url}/events/${latest.events[0]!.seq}`);
      const card = page.locator('[data-testid=delivery][data-status=dead]');
      // Slow enough that the page first sees the delivery in flight.
      sink.setDefault({ status: 200, delayMs: 1500 });
      await card.getByRole('button', { name: 'Replay' }).click();
      await page.locator('[data-testid=delivery][data-status=pending]').waitFor();
      await page.locator('[data-testid=delivery][data-status=delivered]').waitFor({ timeout: 10_000 });
      assert.equal(sink.requests.length, 8);
      assert.deepEqual(errors, []);
      await page.close();
    });

    it('shows the config with the signing secret from the environment redacted', async () => {
      const page = await browser.newPage();
      await page.goto(`${herald.url}/config`);
      const config = page.getByTestId('config');
      await config.getByText('orders-to-hook').waitFor();
      const text = await config.innerText();
      assert.match(text, /"secret": "••••"/);
      assert.ok(!text.includes(secret), 'the secret never reaches the page');
      assert.ok(text.includes(sink.url), 'a URL without credentials is shown as is');
      await page.close();
    });
  });

  describe('with an admin token', () => {
    let herald: TestHerald;
    const token = `dash-${Math.random().toString(36).slice(2)}`;
    before(async () => {
      herald = await startTestHerald(readFileSync(DEMO_CONFIG, 'utf8'), {
        env: { HERALD_ADMIN_TOKEN: token },
      });
    });
    after(async () => {
      await herald.close();
    });

    it('asks for the token, refuses a wrong one, and sends the right one only in a header', async () => {
      assert.equal((await herald.get('/api/events')).status, 401);
      assert.equal((await herald.get('/api/stream')).status, 401);

      const context = await browser.newContext();
      const page = await context.newPage();
      const requests: { url: string; authorization?: string }[] = [];
      page.on('request', (r) => requests.push({ url: r.url(), authorization: r.headers().authorization }));
      await page.goto(herald.url);
      const field = page.getByLabel('Admin token');
      await field.waitFor();
      await shot(page, 'login');

      await field.fill('not-the-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').getByText('Herald refused this token.').waitFor();
      assert.equal(await page.getByRole('heading', { name: 'Live events' }).count(), 0);

      await field.fill(token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByTestId('connection').getByText('live').waitFor();
      await notify(herald, 'sales', 'seen after signing in');
      await page.getByTestId('events').getByText('sales-to-slack').waitFor();

      // The tab keeps it across a reload; a new tab (another session) asks again.
      await page.reload();
      await page.getByTestId('connection').getByText('live').waitFor();
      const other = await browser.newPage();
      await other.goto(herald.url);
      await other.getByLabel('Admin token').waitFor();
      await other.close();

      for (const r of requests) assert.ok(!r.url.includes(token), `the token is in a URL: ${r.url}`);
      const stream = requests.filter((r) => new URL(r.url).pathname === '/api/stream');
      assert.ok(stream.length > 0);
      for (const r of stream) assert.equal(r.authorization, `Bearer ${token}`);

      // Signing out forgets it.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Admin token').waitFor();
      await page.reload();
      await page.getByLabel('Admin token').waitFor();
      await context.close();
    });
  });
});
