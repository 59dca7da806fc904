import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, repoRoot, startTestHerald, type TestHerald } from '../support/herald.js';
import type { SlackCall, SlackServer } from '../support/slack/index.js';
import { startSlackServer } from '../support/slack/index.js';
import {
  blockActionPayload,
  eventCallback,
  form,
  postSignedToSlackApp,
  slashCommandBody,
} from '../support/slack/requests.js';

const SECRET = 'ci-feed-signing-secret';
const recipe = join(repoRoot, 'examples/ci-feed');
/** The recipe's settle delay (CI_FEED_SETTLE), short so the test does not wait 30 s per DM. */
const SETTLE_MS = 1000;

interface Block {
  type: string;
  text?: { text: string };
  elements?: { type: string; action_id?: string; text: { text: string } | string; value?: string }[];
}

const blocksOf = (call: SlackCall): Block[] => {
  const view = typeof call.args.view === 'string' ? JSON.parse(call.args.view) : call.args.view;
  return (view as { blocks: Block[] }).blocks;
};
const textOf = (blocks: Block[]) =>
  blocks
    .map((b) =>
      [
        b.text?.text ?? '',
        ...(b.elements ?? []).map((e) => (typeof e.text === 'string' ? e.text : e.text.text)),
      ].join(' '),
    )
    .join('\n');
const buttons = (blocks: Block[]) =>
  blocks
    .flatMap((b) => (b.type === 'actions' ? (b.elements ?? []) : []))
    .map((e) => (typeof e.text === 'string' ? e.text : e.text.text));

/** The sample events shipped with the recipe, in file order. */
const sample = (name: string) =>
  JSON.parse(readFileSync(join(recipe, 'events', name), 'utf8')) as Record<string, unknown>;

/** An update of CI run `run` of PR 301 by carol, shaped like the samples, with these job statuses. */
const carolRun = (id: string, run: number, type: 'running' | 'completed', jobs: Record<string, string>) => {
  const failing = Object.values(jobs).some((s) => s === 'failure' || s === 'error');
  const status = type === 'running' ? 'running' : failing ? 'failure' : 'success';
  return {
    specversion: '1.0',
    id,
    source: 'https://ci.example.com',
    type: 'ci.workflow.updated',
    subject: 'pr/301',
    datacontenttype: 'application/json',
    data: {
      type,
      author_email: 'carol@example.com',
      pr_number: 301,
      pr_status: 'open',
      pr_title: 'Cache the index',
      parent_pr_number: 0,
      linked_pr_number: 0,
      ci_status: status,
      result: {
        status,
        start_time: '2026-11-21T09:00:00Z',
        duration: type === 'running' ? 0 : 600,
        results: Object.entries(jobs).map(([name, s]) => ({ name, status: s })),
        ext: { report_url: `https://ci.example.com/reports/${run}` },
        links: ['https://git.example.com/acme/index/pull/301', `https://ci.example.com/runs/${run}`],
      },
    },
  };
};

describe('ci-feed recipe end to end (Slack-compatible server, signed requests)', () => {
  let slack: SlackServer;
  let herald: TestHerald;
  before(async () => {
    slack = await startSlackServer();
    slack.addUser({ id: 'UALICE', name: 'alice', email: 'alice@example.com' });
    herald = await startTestHerald(readFileSync(join(recipe, 'herald.yaml'), 'utf8'), {
      env: {
        SLACK_BOT_TOKEN: slack.token,
        SLACK_SIGNING_SECRET: SECRET,
        SLACK_API_URL: slack.url,
        CI_FEED_SETTLE: `${SETTLE_MS}ms`,
      },
    });
  });
  after(async () => {
    await herald?.close();
    await slack?.close();
  });

  const publishesFor = (user: string) =>
    slack.callsTo('views.publish').filter((c) => c.args.user_id === user);
  /** Waits for a Home publish after `since` calls whose text satisfies `check`. */
  const nextHome = (since: number, check: (text: string, blocks: Block[]) => boolean, user = 'UALICE') =>
    eventually(() => {
      const calls = publishesFor(user).slice(since);
      const last = calls[calls.length - 1];
      if (!last) return undefined;
      const blocks = blocksOf(last);
      return check(textOf(blocks), blocks) ? blocks : undefined;
    }, 10_000);
  const send = (event: Record<string, unknown>) =>
    herald.post('/events', event, { 'content-type': 'application/cloudevents+json' });
  const toggle = async (actionId: string, blocks: Block[], user = 'UALICE') => {
    const button = blocks.flatMap((b) => b.elements ?? []).find((e) => e.action_id === actionId);
    assert.ok(button, `a ${actionId} button`);
    const res = await postSignedToSlackApp(
      herald.url,
      '/slack/interactions',
      SECRET,
      form({ payload: JSON.stringify(blockActionPayload(user, actionId, button.value!)) }),
      'application/x-www-form-urlencoded',
    );
    assert.equal(res.status, 200);
  };
  const dms = (user = 'UALICE') =>
    slack
      .callsTo('chat.postMessage')
      .filter((c) => c.args.channel === `D${user.slice(1)}` || c.args.channel === user);
  const subscribe = async (user: string) => {
    const responseUrl = slack.createResponseUrl();
    await postSignedToSlackApp(
      herald.url,
      '/slack/commands',
      SECRET,
      form(
        slashCommandBody({ command: '/herald', text: 'subscribe', user_id: user, response_url: responseUrl }),
      ),
      'application/x-www-form-urlencoded',
    );
    await eventually(() => slack.responses.get(responseUrl)?.[0]);
  };
  interface EventDetail {
    routing: { matched: string[]; deliveries: number } | null;
    deliveries: { trigger: string; recipient: string; status: string; lastError: string | null }[];
  }
  const detail = async (id: string) => (await (await herald.get(`/api/events/${id}`)).json()) as EventDetail;
  /** The event's deliveries once its routing is recorded. */
  const routed = (id: string) =>
    eventually(async () => {
      const e = await detail(id);
      return e.routing ? e : undefined;
    });
  const settled = () => new Promise((r) => setTimeout(r, SETTLE_MS + 700));

  it('the recipe ships sample events for every step', () => {
    assert.deepEqual(readdirSync(join(recipe, 'events')).sort(), [
      '1-pr-running.json',
      '2-pr-completed-failure.json',
      '3-auxiliary-pr-running.json',
      '4-merge-result.json',
      '5-auxiliary-pr-completed.json',
    ]);
  });

  it('subscribe, then CI events → Home shows the PR as merged with its failing job; failure DM lists the jobs', async () => {
    await subscribe('UALICE');

    for (const file of [
      '1-pr-running.json',
      '2-pr-completed-failure.json',
      '3-auxiliary-pr-running.json',
      '4-merge-result.json',
    ]) {
      assert.equal((await send(sample(file))).status, 202);
    }
    const blocks = await nextHome(0, (text) => text.includes('Merge result') && text.includes('#101'));
    const text = textOf(blocks);
    assert.match(text, /#101 Add retries to the uploader/);
    assert.match(text, /PR: \*merged\*/, 'the merge result names PR 101 as its parent');
    assert.match(text, /Failing: e2e-tests/);
    assert.match(text, /Jobs: 2 success, 1 failure/);
    assert.match(text, /#102 Follow-up: tune backoff/);
    assert.match(text, /<https:\/\/ci\.example\.com\/runs\/9001\|Run>/);
    assert.match(text, /<https:\/\/ci\.example\.com\/reports\/9001\|Report>/);
    assert.deepEqual(buttons(blocks), [
      'Merged PRs: On',
      'Merges: On',
      'Auxiliary PRs: On',
      '< 7d: Off',
      'Notify complete: Off',
      'Notify failure: On',
    ]);

    const failureDm = await eventually(() => dms().find((c) => String(c.args.text).includes('CI failed')));
    assert.match(String(failureDm.args.text), /PR #101 Add retries to the uploader/);
    assert.match(String(failureDm.args.text), /Failing: e2e-tests/);
    assert.doesNotMatch(String(failureDm.args.text), /lint/);
    // notify_on_complete is off by default: the completed events sent no "completed" DM.
    await settled();
    assert.equal(dms().filter((c) => String(c.args.text).includes('CI completed')).length, 0);
  });

  it('each toggle re-publishes the Home with the right entries hidden', async () => {
    let seen = publishesFor('UALICE').length;
    let blocks = blocksOf(publishesFor('UALICE').at(-1)!);

    await toggle('pref:hide_merged_prs', blocks);
    blocks = await nextHome(seen, (_t, b) => buttons(b).includes('Merged PRs: Off'));
    assert.doesNotMatch(textOf(blocks), /#101 Add retries/, 'the merged PR is hidden');
    assert.match(textOf(blocks), /Merge result of #101/, 'merge results stay');
    assert.match(textOf(blocks), /#102 Follow-up: tune backoff/, 'the open auxiliary PR stays');

    seen = publishesFor('UALICE').length;
    await toggle('pref:hide_merges', blocks);
    blocks = await nextHome(seen, (_t, b) => buttons(b).includes('Merges: Off'));
    assert.doesNotMatch(textOf(blocks), /Merge result/);

    seen = publishesFor('UALICE').length;
    await toggle('pref:hide_secondary_prs', blocks);
    blocks = await nextHome(seen, (_t, b) => buttons(b).includes('Auxiliary PRs: Off'));
    assert.doesNotMatch(textOf(blocks), /#102/, 'a PR with a parent is auxiliary');

    seen = publishesFor('UALICE').length;
    await toggle('pref:hide_merged_prs', blocks);
    blocks = await nextHome(seen, (_t, b) => buttons(b).includes('Merged PRs: On'));
    assert.match(textOf(blocks), /#101 Add retries/);

    const stored = (await (await herald.get('/api/subscribers/slack:UALICE')).json()) as {
      preferences: Record<string, boolean>;
    };
    assert.equal(stored.preferences.hide_merges, true);
    assert.equal(stored.preferences.hide_secondary_prs, true);
    assert.equal(stored.preferences.hide_merged_prs, false);
  });

  it('no failure DM when the preference is off; a completed DM once notify_on_complete is on', async () => {
    let seen = publishesFor('UALICE').length;
    let blocks = blocksOf(publishesFor('UALICE').at(-1)!);
    await toggle('pref:notify_on_failure', blocks);
    blocks = await nextHome(seen, (_t, b) => buttons(b).includes('Notify failure: Off'));
    const failuresBefore = dms().filter((c) => String(c.args.text).includes('CI failed')).length;
    const again = { ...sample('2-pr-completed-failure.json'), id: 'run-9001-retry' };
    assert.equal((await send(again)).status, 202);
    const routed = await eventually(async () => {
      const e = (await (await herald.get('/api/events/run-9001-retry')).json()) as {
        routing: { matched: string[]; deliveries: number } | null;
      };
      return e.routing ?? undefined;
    });
    assert.ok(routed.matched.includes('ci-failure-dm'), 'the trigger matched');
    assert.equal(routed.deliveries, 0, 'but nobody wanted it');
    assert.equal(dms().filter((c) => String(c.args.text).includes('CI failed')).length, failuresBefore);

    seen = publishesFor('UALICE').length;
    await toggle('pref:notify_on_complete', blocks);
    await nextHome(seen, (_t, b) => buttons(b).includes('Notify complete: On'));
    assert.equal((await send(sample('5-auxiliary-pr-completed.json'))).status, 202);
    const completed = await eventually(() => dms().find((c) => String(c.args.text).includes('CI completed')));
    assert.match(String(completed.args.text), /CI completed \(success\) for PR #102/);
  });

  describe('one DM per run and kind, the newest update wins (someone who wants failures and completions)', () => {
    const failed = () => dms('UCAROL').filter((c) => String(c.args.text).includes('CI failed'));
    const completed = () => dms('UCAROL').filter((c) => String(c.args.text).includes('CI completed'));

    before(async () => {
      slack.addUser({ id: 'UCAROL', name: 'carol', email: 'carol@example.com' });
      await subscribe('UCAROL');
      const blocks = await nextHome(0, (_t, b) => buttons(b).includes('Notify complete: Off'), 'UCAROL');
      const seen = publishesFor('UCAROL').length;
      await toggle('pref:notify_on_complete', blocks, 'UCAROL');
      await nextHome(seen, (_t, b) => buttons(b).includes('Notify complete: On'), 'UCAROL');
    });

    it('two progress updates of a failing run → one failure DM, with the newest update’s jobs', async () => {
      assert.equal(
        (
          await send(
            carolRun('run-9301-1', 9301, 'running', {
              lint: 'success',
              'unit-tests': 'failure',
              'e2e-tests': 'running',
            }),
          )
        ).status,
        202,
      );
      assert.equal(
        (
          await send(
            carolRun('run-9301-2', 9301, 'running', {
              lint: 'success',
              'unit-tests': 'failure',
              'e2e-tests': 'failure',
            }),
          )
        ).status,
        202,
      );
      const dm = await eventually(() => failed()[0], 10_000, 'the failure DM');
      assert.match(String(dm.args.text), /CI failed for PR #301 Cache the index\./);
      assert.match(String(dm.args.text), /Failing: unit-tests e2e-tests/, 'the newer update lists both jobs');
      assert.match(String(dm.args.text), /https:\/\/ci\.example\.com\/runs\/9301/);
      const first = (await routed('run-9301-1')).deliveries.find((d) => d.recipient === 'UCAROL');
      assert.equal(first?.status, 'suppressed');
      assert.match(String(first?.lastError), /replaced by event run-9301-2/);
      await settled();
      assert.equal(failed().length, 1);
    });

    it('the run then completes with the failure: no second failure DM and no complete DM', async () => {
      const before = dms('UCAROL').length;
      assert.equal(
        (
          await send(
            carolRun('run-9301-3', 9301, 'completed', {
              lint: 'success',
              'unit-tests': 'failure',
              'e2e-tests': 'failure',
            }),
          )
        ).status,
        202,
      );
      const e = await routed('run-9301-3');
      assert.deepEqual(
        e.routing?.matched,
        ['ci-failure-dm'],
        'a completed run with a failing job is not "complete"',
      );
      const mine = e.deliveries.filter((d) => d.recipient === 'UCAROL');
      assert.equal(mine.length, 1);
      assert.equal(mine[0]!.status, 'suppressed');
      assert.match(
        String(mine[0]!.lastError),
        /deduped by key "[^"]+:failure"/,
        'its failure DM already went out',
      );
      await settled();
      assert.equal(dms('UCAROL').length, before);
    });

    it('a run that completes with a failing job → the failure DM only', async () => {
      assert.equal(
        (await send(carolRun('run-9302-1', 9302, 'completed', { lint: 'success', 'unit-tests': 'error' })))
          .status,
        202,
      );
      const dm = await eventually(
        () => failed().find((c) => String(c.args.text).includes('runs/9302')),
        10_000,
        'the failure DM of run 9302',
      );
      assert.match(String(dm.args.text), /Failing: unit-tests/);
      assert.deepEqual((await routed('run-9302-1')).routing?.matched, ['ci-failure-dm']);
      await settled();
      assert.equal(completed().length, 0);
      assert.equal(failed().filter((c) => String(c.args.text).includes('runs/9302')).length, 1);
    });

    it('a clean completed run → the complete DM, once even when CI reports the completion twice', async () => {
      const clean = { lint: 'success', 'unit-tests': 'success' };
      assert.equal((await send(carolRun('run-9303-1', 9303, 'completed', clean))).status, 202);
      const dm = await eventually(() => completed()[0], 10_000, 'the complete DM');
      assert.match(String(dm.args.text), /CI completed \(success\) for PR #301 Cache the index\./);
      assert.match(String(dm.args.text), /runs\/9303/);
      assert.equal((await send(carolRun('run-9303-2', 9303, 'completed', clean))).status, 202);
      const again = (await routed('run-9303-2')).deliveries.find((d) => d.recipient === 'UCAROL');
      assert.equal(again?.status, 'suppressed');
      assert.match(String(again?.lastError), /deduped by key/);
      await settled();
      assert.equal(completed().length, 1);
      assert.equal(failed().filter((c) => String(c.args.text).includes('runs/9303')).length, 0);
    });
  });

  it('app_home_opened publishes the Home for someone who follows nothing yet', async () => {
    slack.addUser({ id: 'UNEW', name: 'new', email: 'new@example.com' });
    const res = await postSignedToSlackApp(
      herald.url,
      '/slack/events',
      SECRET,
      JSON.stringify(eventCallback({ type: 'app_home_opened', user: 'UNEW', channel: 'DNEW', tab: 'home' })),
      'application/json',
    );
    assert.equal(res.status, 200);
    const call = await slack.waitForCall('views.publish', (c) => c.args.user_id === 'UNEW');
    assert.match(textOf(blocksOf(call)), /You follow nothing yet\. Type `\/herald subscribe`/);
  });
});
