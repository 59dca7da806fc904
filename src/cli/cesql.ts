import type { Command } from 'commander';

/** Adds `herald cesql …` (CESQL evaluation) to the CLI. */
export function registerCesqlCommand(_program: Command): void {}
