/** The extension that counts how many times an event has been re-emitted (emit channel, `then:`, jobs). */
export const HOPS_EXTENSION = 'heraldhops';
