import type { CloudEvent } from '../events/types.js';
import type { CompiledTrigger } from './model.js';

/** Some triggers, by their place in the configuration and as themselves (answered as they are). */
interface Bucket {
  positions: number[];
  triggers: CompiledTrigger[];
}

/** Triggers that share the attribute they are indexed by, by the values they need it to hold. */
interface AttributeGroup {
  attribute: string;
  byValue: Map<string, Bucket>;
  /** Every trigger of the group: all of them run for an event that holds no string there. */
  all: Bucket;
}

const add = (bucket: Bucket, position: number, trigger: CompiledTrigger): void => {
  bucket.positions.push(position);
  bucket.triggers.push(trigger);
};
const bucket = (): Bucket => ({ positions: [], triggers: [] });

/**
 * Which triggers can match an event, so that routing evaluates those alone. A trigger whose
 * filter states requirements (`Matcher.requires`: `type = 'x' AND subject = 'y'`, an `exact`
 * filter) is indexed by one of them: the attribute whose values tell the most triggers apart.
 * An event that holds a string there is checked against the triggers needing that string; one
 * that holds anything else, against all of the group. Triggers without requirements run for
 * every event. The answer keeps the triggers' order, so routing records and deliveries come out
 * exactly as evaluating every trigger would make them.
 *
 * A requirement decides only when the event holds a string for every attribute its trigger
 * lists, so the attributes a trigger lists besides the one it is indexed by are guards: an event
 * missing a guard (say, without a `subject`) is checked against every trigger.
 */
export class TriggerIndex {
  private readonly unindexed = bucket();
  private readonly groups: AttributeGroup[] = [];
  private readonly guards: string[];

  constructor(private readonly triggers: readonly CompiledTrigger[]) {
    const distinct = new Map<string, Set<string>>();
    for (const trigger of triggers)
      for (const { attribute, values } of trigger.matcher.requires ?? []) {
        const seen = distinct.get(attribute) ?? new Set<string>();
        distinct.set(attribute, seen);
        for (const value of values) seen.add(value);
      }
    const guards = new Set<string>();
    const groupOf = new Map<string, AttributeGroup>();
    triggers.forEach((trigger, position) => {
      const requires = trigger.matcher.requires ?? [];
      if (requires.length === 0) {
        add(this.unindexed, position, trigger);
        return;
      }
      let chosen = requires[0]!;
      for (const requirement of requires)
        if (distinct.get(requirement.attribute)!.size > distinct.get(chosen.attribute)!.size)
          chosen = requirement;
      for (const { attribute } of requires) if (attribute !== chosen.attribute) guards.add(attribute);
      let group = groupOf.get(chosen.attribute);
      if (!group) {
        group = { attribute: chosen.attribute, byValue: new Map(), all: bucket() };
        groupOf.set(chosen.attribute, group);
        this.groups.push(group);
      }
      add(group.all, position, trigger);
      // A trigger listing the attribute twice (`type = 'a' AND type IN ('a', 'b')`) needs both.
      const values = requires
        .filter((r) => r.attribute === chosen.attribute)
        .reduce<readonly string[]>((kept, r) => kept.filter((v) => r.values.includes(v)), chosen.values);
      for (const value of new Set(values)) {
        const byValue = group.byValue.get(value) ?? bucket();
        group.byValue.set(value, byValue);
        add(byValue, position, trigger);
      }
    });
    this.guards = [...guards];
  }

  /** The triggers that can match `event`, in their configured order. */
  candidates(event: CloudEvent): readonly CompiledTrigger[] {
    if (this.groups.length === 0) return this.triggers;
    for (const guard of this.guards) if (typeof event[guard] !== 'string') return this.triggers;
    let only: Bucket | null = this.unindexed.positions.length > 0 ? this.unindexed : null;
    let merged: number[] | null = null;
    for (const group of this.groups) {
      const value = event[group.attribute];
      const found = typeof value === 'string' ? group.byValue.get(value) : group.all;
      if (!found) continue;
      if (only === null) only = found;
      else {
        merged ??= [...only.positions];
        merged.push(...found.positions);
      }
    }
    if (merged) return merged.sort((a, b) => a - b).map((position) => this.triggers[position]!);
    return only ? only.triggers : [];
  }
}
