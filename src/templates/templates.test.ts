import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeraldError } from '../errors.js';
import {
  compileTemplate,
  compileTree,
  configureTemplateLimits,
  DEFAULT_TEMPLATE_LIMITS,
  renderTree,
  TemplateRenderError,
  templateSchema,
} from './index.js';

const scope = {
  event: { id: '1', subject: 'sales', data: { description: 'Quote <b>now</b>', items: [1, 2] } },
};

describe('templates', () => {
  it('render event fields', () => {
    assert.equal(
      compileTemplate('New: {{ event.data.description }} ({{ event.subject }})').render(scope),
      'New: Quote <b>now</b> (sales)',
    );
    assert.equal(compileTemplate('{{ event.data.items | size }}').render(scope), '2');
    assert.equal(
      compileTemplate('{{ event.data.missing }}').render(scope),
      '',
      'a missing field renders empty',
    );
  });

  it('a constant string is not parsed', () => {
    const t = compileTemplate('plain text');
    assert.equal(t.constant, true);
    assert.equal(t.render({}), 'plain text');
  });

  it('a template that does not parse is a TEMPLATE_ERROR naming the problem', () => {
    assert.throws(
      () => compileTemplate('{{ event.data | nosuchfilter }}'),
      (e: unknown) =>
        e instanceof HeraldError && e.code === 'TEMPLATE_ERROR' && /nosuchfilter/.test(e.message),
    );
    assert.throws(
      () => compileTemplate('{% if x %}unclosed'),
      (e: unknown) => e instanceof HeraldError && e.code === 'TEMPLATE_ERROR',
    );
  });

  it('a render error is a TemplateRenderError with the message', () => {
    const t = compileTemplate('{{ event.subject | append }}');
    assert.throws(
      () => t.render(scope),
      (e: unknown) => e instanceof TemplateRenderError && /append/.test(e.message),
    );
  });

  it('templates cannot read files', () => {
    assert.throws(() => compileTemplate('{% include "/etc/passwd" %}').render(scope), TemplateRenderError);
    assert.throws(() => compileTemplate('{% render "package.json" %}').render(scope), TemplateRenderError);
  });

  it('runaway templates are stopped', () => {
    assert.throws(
      () => compileTemplate('{% for i in (1..100000000) %}x{% endfor %}').render(scope),
      /render limit|memory alloc limit/,
    );
  });

  it('applies the configured limits: render time, memory, template length', () => {
    try {
      configureTemplateLimits({ renderLimitMs: 50, memoryLimit: 1_000, parseLimit: 50 });
      const big = { event: { data: { s: 'x'.repeat(600) } } };
      assert.throws(
        () => compileTemplate('{{ event.data.s | append: event.data.s }}').render(big),
        /memory alloc limit/,
      );
      assert.throws(() => compileTemplate(`{{ event.id }}${' '.repeat(40)}`), /parseLimit allows 50/);
      configureTemplateLimits({ renderLimitMs: 5, memoryLimit: 1e12, parseLimit: 1000 });
      const spin = compileTemplate('{% for i in (1..400) %}{% for j in (1..400) %}{% endfor %}{% endfor %}');
      const started = performance.now();
      assert.throws(() => spin.render(scope), /render limit/);
      assert.ok(performance.now() - started < 500);
    } finally {
      configureTemplateLimits(DEFAULT_TEMPLATE_LIMITS);
    }
  });

  it('template trees render every string leaf and keep other values', () => {
    const tree = compileTree({
      text: '{{ event.subject }}',
      n: 3,
      ok: true,
      blocks: [{ type: 'section', text: '{{ event.id }}' }],
      none: null,
    });
    assert.deepEqual(renderTree(tree, scope), {
      text: 'sales',
      n: 3,
      ok: true,
      blocks: [{ type: 'section', text: '1' }],
      none: null,
    });
  });

  it('the config schema reports a bad template as an issue', () => {
    const result = templateSchema().safeParse('{{ x | bogus }}');
    assert.equal(result.success, false);
    assert.match(result.error!.issues[0]!.message, /bogus/);
  });
});
