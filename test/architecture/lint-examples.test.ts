import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { findCutText, lintExamples } from '../../scripts/lint-examples.js';
import { repoRoot } from '../support/herald.js';

describe('lint of the shipped examples: text cut by a `#`', () => {
  it('reports prose whose tail YAML reads as a comment, naming what is left of it', () => {
    const yaml = 'triggers:\n  t:\n    description: Sales requests go to the #sales Slack channel.\n';
    assert.equal(parse(yaml).triggers.t.description, 'Sales requests go to the', 'the YAML really cuts it');
    const found = findCutText(yaml);
    assert.equal(found.length, 1);
    assert.equal(found[0]!.line, 3);
    assert.equal(found[0]!.value, 'Sales requests go to the');
    assert.match(found[0]!.message, /quote the whole value/);
  });

  it('reports a `#word` after a key, which leaves the value empty', () => {
    const found = findCutText('actions:\n  - channel: slack\n    to: #sales\n');
    assert.deepEqual(
      found.map((f) => [f.line, f.value, f.comment]),
      [[3, '', '#sales']],
    );
  });

  it('reports a multi-line plain value whose last line holds the comment', () => {
    const found = findCutText('a:\n  description: first line\n    goes on #here\n');
    assert.equal(found.length, 1);
    assert.equal(found[0]!.line, 3);
  });

  it('passes quoted text, block scalars, trailing notes after one-word values and comment lines', () => {
    const yaml = [
      '# notify-router: a bot POSTs #things',
      'description: "Sales requests go to the #sales Slack channel."',
      "other: 'single #quoted'",
      'queue: herald-onboarding # several processes share it',
      'scopes:',
      '  - chat:write # DMs',
      'text: >-',
      '  PR #{{ event.data.pr_number }} failed # not a comment here',
      'flow: { kind: inbox } # a note',
      '',
    ].join('\n');
    assert.deepEqual(findCutText(yaml), []);
  });

  it('finds nothing in the shipped examples', () => {
    assert.deepEqual(lintExamples(`${repoRoot}/examples`), []);
  });
});
