import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FeedItem } from '../engine/store.js';
import { ciEntries, failingJobs, jobSummary, nextValue, toggleLabel } from './home.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');
let seq = 0;
const item = (time: string, data: Record<string, unknown>): FeedItem => ({
  key: 'email:a@example.com',
  eventSeq: ++seq,
  at: Date.parse(time),
  event: { specversion: '1.0', id: `e${seq}`, source: 'ci', type: 'ci.workflow.updated', time, data },
});
const pr = (n: number, extra: Record<string, unknown> = {}) => ({
  type: 'completed',
  pr_number: n,
  pr_status: 'open',
  pr_title: `PR ${n}`,
  parent_pr_number: 0,
  linked_pr_number: 0,
  ...extra,
});
const ids = (entries: ReturnType<typeof ciEntries>) =>
  entries.map((e) => (e.kind === 'merge' ? `merge:${e.data.parent_pr_number}` : `pr:${e.data.pr_number}`));

describe('ci-feed entries', () => {
  const items = [
    item('2026-11-22T10:00:00Z', pr(1)),
    item('2026-11-22T11:00:00Z', pr(2, { parent_pr_number: 1 })),
    item('2026-11-10T11:00:00Z', pr(3)),
    item('2026-11-22T12:00:00Z', pr(0, { parent_pr_number: 1, linked_pr_number: 3, pr_status: 'merged' })),
    item('2026-11-22T13:00:00Z', pr(4, { pr_status: 'merged' })),
  ].reverse(); // feeds are newest first

  it('parent and linked PRs of a merge result count as merged; newest first', () => {
    const entries = ciEntries(items, {}, NOW);
    assert.deepEqual(ids(entries), ['pr:4', 'merge:1', 'pr:2', 'pr:1', 'pr:3']);
    const merged = Object.fromEntries(entries.map((e) => [String(e.data.pr_number || 'm'), e.merged]));
    assert.deepEqual(merged, { 4: true, m: true, 2: false, 1: true, 3: true });
  });

  it('each toggle hides exactly its entries', () => {
    assert.deepEqual(ids(ciEntries(items, { hide_merged_prs: true }, NOW)), ['merge:1', 'pr:2']);
    assert.deepEqual(ids(ciEntries(items, { hide_merges: true }, NOW)), ['pr:4', 'pr:2', 'pr:1', 'pr:3']);
    assert.deepEqual(ids(ciEntries(items, { hide_secondary_prs: true }, NOW)), [
      'pr:4',
      'merge:1',
      'pr:1',
      'pr:3',
    ]);
    assert.deepEqual(ids(ciEntries(items, { show_last_7d: true }, NOW)), ['pr:4', 'merge:1', 'pr:2', 'pr:1']);
  });

  it('only the newest event of a PR is shown', () => {
    const entries = ciEntries(
      [
        item('2026-11-22T10:05:00Z', pr(9, { ci_status: 'success' })),
        item('2026-11-22T10:00:00Z', pr(9, { ci_status: 'running' })),
      ],
      {},
      NOW,
    );
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.data.ci_status, 'success');
  });

  it('job summary and failing jobs', () => {
    const result = {
      results: [
        { name: 'a', status: 'success' },
        { name: 'b', status: 'failure' },
        { name: 'c', status: 'error' },
        { name: 'd', status: 'success' },
      ],
    };
    assert.equal(jobSummary(result), '2 success, 1 failure, 1 error');
    assert.deepEqual(failingJobs({ result }), ['b', 'c']);
    assert.equal(jobSummary(undefined), 'no jobs yet');
  });

  it('toggle labels: On means the value named by `on`; enums cycle', () => {
    const hide = { type: 'boolean' as const, default: false, label: 'Merged PRs', on: false };
    assert.equal(toggleLabel('hide_merged_prs', hide, false), 'Merged PRs: On');
    assert.equal(toggleLabel('hide_merged_prs', hide, true), 'Merged PRs: Off');
    assert.equal(nextValue(hide, false), true);
    const digest = { type: 'enum' as const, values: ['none', 'daily', 'weekly'], default: 'none' };
    assert.equal(nextValue(digest, 'weekly'), 'none');
    assert.equal(toggleLabel('digest', digest, 'daily'), 'digest: daily');
  });
});
