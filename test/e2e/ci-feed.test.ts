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

describe('ci-feed recipe end to end (Slack-compatible server, signed requests)', () => {
  let slack: SlackServer;
  let herald: TestHerald;
  before(async () => {
    slack = await startSlackServer();
    slack.addUser({ id: 'UALICE', name: 'alice', email: 'alice@example.com' });
    herald = await startTestHerald(readFileSync(join(recipe, 'herald.yaml'), 'utf8'), {
      env: { SLACK_BOT_TOKEN: slack.token, SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: slack.url },
    });
  });
  after(async () => {
    await herald?.close();
    await slack?.close();
  });

  const publishesFor = (user: string) =>
    slack.callsTo('views.publish').filter((c) => c.args.user_id === user);
  /** Waits for a Home publish after `since` calls whose text satisfies `check`. */
  const nextHome = (since: number, check: (text: string, blocks: Block[]) => boolean) =>
    eventually(() => {
      const calls = publishesFor('UALICE').slice(since);
      const last = calls[calls.length - 1];
      if (!last) return undefined;
      const blocks = blocksOf(last);
      return check(textOf(blocks), blocks) ? blocks : undefined;
    }, 10_000);
  const send = (event: Record<string, unknown>) =>
    herald.post('/events', event, { 'content-type': 'application/cloudevents+json' });
  const toggle = async (actionId: string, blocks: Block[]) => {
    const button = blocks.flatMap((b) => b.elements ?? []).find((e) => e.action_id === actionId);
    assert.ok(button, `a ${actionId} button`);
    const res = await postSignedToSlackApp(
      herald.url,
      '/slack/interactions',
      SECRET,
      form({ payload: JSON.stringify(blockActionPayload('UALICE', actionId, button.value!)) }),
      'application/x-www-form-urlencoded',
    );
    assert.equal(res.status, 200);
  };
  const dms = () =>
    slack
      .callsTo('chat.postMessage')
      .filter((c) => c.args.channel === 'DALICE' || c.args.channel === 'UALICE');

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
    const responseUrl = slack.createResponseUrl();
    await postSignedToSlackApp(
      herald.url,
      '/slack/commands',
      SECRET,
      form(
        slashCommandBody({
          command: '/herald',
          text: 'subscribe',
          user_id: 'UALICE',
          response_url: responseUrl,
        }),
      ),
      'application/x-www-form-urlencoded',
    );
    await eventually(() => slack.responses.get(responseUrl)?.[0]);

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
    await new Promise((r) => setTimeout(r, 300));
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
