/**
 * A new event id: a UUID version 7 (RFC 9562), whose first 48 bits are the Unix time in
 * milliseconds. The log's identity index is ordered by id, so ids that grow with time add to the
 * end of it: a batch of new events then writes one or two of its pages, where random ids (version
 * 4) wrote a page each, and those pages are most of what a busy log writes to disk.
 *
 * Made from a version 4 UUID (Web Crypto's, native and pooled, and there outside Node too, where
 * the client SDK runs): the time replaces its first 48 bits and the version nibble becomes 7,
 * leaving 74 random bits, as version 7 has. Ids made in the same millisecond are in no particular
 * order, which RFC 9562 allows.
 */
export function newEventId(now = Date.now()): string {
  if (now !== prefixMs) {
    const time = now.toString(16).padStart(12, '0');
    prefix = `${time.slice(0, 8)}-${time.slice(8, 12)}-7`;
    prefixMs = now;
  }
  return prefix + crypto.randomUUID().slice(15);
}

/** The text before the random part, kept for the millisecond it is of: a busy source makes many ids in one. */
let prefixMs = -1;
let prefix = '';
