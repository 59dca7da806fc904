// The store interface is the engine's (src/engine/store.ts): the implementations here import it
// from this module so that each of them names one place.
export * from '../engine/store.js';
