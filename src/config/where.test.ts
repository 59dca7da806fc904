import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileWhere } from './load.js';

const prefs = { notify_on_failure: true, muted: false, digest: 'daily', level: 'high' };

describe('where over preferences', () => {
  it('simple forms: name, not name, !name, name = value, name != value', () => {
    assert.equal(compileWhere('notify_on_failure')(prefs), true);
    assert.equal(compileWhere('muted')(prefs), false);
    assert.equal(compileWhere('not muted')(prefs), true);
    assert.equal(compileWhere('!notify_on_failure')(prefs), false);
    assert.equal(compileWhere("digest = 'daily'")(prefs), true);
    assert.equal(compileWhere('digest == weekly')(prefs), false);
    assert.equal(compileWhere('digest != weekly')(prefs), true);
  });

  it('anything else is CESQL over the preferences: true only when it yields true without errors', () => {
    assert.equal(compileWhere("level = 'high' AND digest = 'daily'")(prefs), true);
    assert.equal(compileWhere("level = 'low' OR digest = 'weekly'")(prefs), false);
    assert.equal(
      compileWhere("missing = 'x' OR level = 'high'")(prefs),
      false,
      'a missing attribute is an error',
    );
  });

  it('a CESQL syntax error names the simple forms', () => {
    assert.throws(() => compileWhere('level = = 1'), /CESQL: .*write `name`, `not name` or `name = value`/);
  });
});
