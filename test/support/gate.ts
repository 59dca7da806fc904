/**
 * A gate a test closes to hold work back (an ingest, a routing batch) and opens when it has looked
 * at what holding it back does. Open by default.
 */
export function gate() {
  let closed: Promise<void> | null = null;
  return {
    /** Resolves at once while open; while closed, once it opens. */
    passed: (): Promise<void> => closed ?? Promise.resolve(),
    /** Closes the gate; the returned function opens it again. */
    close(): () => void {
      let open: () => void = () => undefined;
      closed = new Promise<void>((resolve) => {
        open = () => {
          closed = null;
          resolve();
        };
      });
      return open;
    },
  };
}
