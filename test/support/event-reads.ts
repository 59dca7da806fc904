import type { Store } from '../../src/engine/store.js';

/**
 * Wraps the store's event reads (`events.get` and `events.getMany`) so a test sees which events
 * are read back from the log: `onRead` gets each call's seqs and whether it was a single read.
 */
export function watchEventReads(store: Store, onRead: (seqs: number[], single: boolean) => void): Store {
  const get = store.events.get.bind(store.events);
  const getMany = store.events.getMany.bind(store.events);
  store.events.get = (seq) => {
    onRead([seq], true);
    return get(seq);
  };
  store.events.getMany = (seqs) => {
    onRead(seqs, false);
    return getMany(seqs);
  };
  return store;
}
