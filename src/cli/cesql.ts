import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CloudEvent } from '../events/types.js';
import { evaluate } from '../filters/cesql/index.js';
import { checkCase, MINIMAL_EVENT, readTckFile, runCase } from '../filters/cesql/tck.js';

/** Adds `herald cesql eval` and `herald cesql run` (the CESQL evaluator, for people and tools). */
export function registerCesqlCommand(program: Command): void {
  const cesql = program
    .command('cesql')
    .description('Evaluate CESQL expressions (the language of `sql` filters).');

  cesql
    .command('eval')
    .description(
      'Evaluate one expression. Prints {"result": value, "errors": [kind…]}; exit 0 when it parsed, 2 when not.',
    )
    .requiredOption('-e, --expr <expression>', 'the CESQL expression')
    .option('--event <json>', 'the event as JSON (default: a minimal valid event)')
    .option('--event-file <file>', 'read the event from a JSON file')
    .action((opts: { expr: string; event?: string; eventFile?: string }) => {
      let event: CloudEvent = MINIMAL_EVENT;
      try {
        if (opts.event !== undefined) event = JSON.parse(opts.event);
        else if (opts.eventFile !== undefined) event = JSON.parse(readFileSync(opts.eventFile, 'utf8'));
      } catch (err) {
        console.error(`herald cesql eval: the event is not valid JSON: ${(err as Error).message}`);
        process.exit(1);
      }
      const { result, errors } = evaluate(opts.expr, event);
      console.log(JSON.stringify({ result, errors }));
      process.exit(errors.includes('parse') ? 2 : 0);
    });

  cesql
    .command('run')
    .description(
      'Run files in the CESQL TCK format; print one JSON line per case. With --check, compare with each case and summarise.',
    )
    .argument(
      '<files...>',
      'YAML files with `tests: [{name, expression, event?, eventOverrides?, result?, error?}]`',
    )
    .option(
      '--check',
      'compare with the expected result/error, print failures and a summary, exit 1 on any failure',
    )
    .action((files: string[], opts: { check?: boolean }) => {
      let passed = 0;
      let failed = 0;
      for (const file of files) {
        let cases: ReturnType<typeof readTckFile>;
        try {
          cases = readTckFile(file);
        } catch (err) {
          console.error(`herald cesql run: ${(err as Error).message}`);
          process.exit(1);
        }
        for (const c of cases) {
          const outcome = runCase(file, c);
          if (!opts.check) {
            console.log(JSON.stringify(outcome));
            continue;
          }
          const problem = checkCase(c, outcome);
          if (problem) {
            failed++;
            console.log(`FAIL ${outcome.file} › ${c.name}: ${c.expression} → ${problem}`);
          } else passed++;
        }
      }
      if (opts.check) {
        console.log(`${passed} passed, ${failed} failed`);
        process.exit(failed > 0 ? 1 : 0);
      }
    });
}
