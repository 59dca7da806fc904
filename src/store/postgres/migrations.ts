/** Numbered schema migrations; each runs once, in order, inside a transaction. */
export const migrations: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE events (
  seq BIGSERIAL PRIMARY KEY,
  id TEXT NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  subject TEXT,
  received_at BIGINT NOT NULL,
  routed_at BIGINT,
  routing JSONB,
  event JSONB NOT NULL,
  UNIQUE (source, id)
);
CREATE INDEX events_unrouted ON events (seq) WHERE routed_at IS NULL;
CREATE INDEX events_by_id ON events (id);
CREATE INDEX events_by_type ON events (type, seq DESC);
CREATE INDEX events_by_subject ON events (subject, seq DESC);

CREATE TABLE deliveries (
  id BIGSERIAL PRIMARY KEY,
  event_seq BIGINT NOT NULL REFERENCES events (seq),
  event_id TEXT NOT NULL,
  event_source TEXT NOT NULL,
  event_type TEXT NOT NULL,
  trigger TEXT NOT NULL,
  action INTEGER NOT NULL,
  channel TEXT NOT NULL,
  recipient TEXT,
  idempotency_key TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  next_attempt_at BIGINT NOT NULL,
  lease_until BIGINT,
  last_error TEXT,
  remote_id TEXT,
  rendered JSONB,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (channel, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_status ON deliveries (status, id DESC);
CREATE INDEX deliveries_by_event ON deliveries (event_seq);

CREATE TABLE attempts (
  delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
  number INTEGER NOT NULL,
  started_at BIGINT NOT NULL,
  duration_ms INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  error TEXT,
  next_attempt_at BIGINT,
  PRIMARY KEY (delivery_id, number, started_at)
);

CREATE TABLE inbox (
  id BIGSERIAL PRIMARY KEY,
  channel TEXT NOT NULL,
  recipient TEXT,
  message JSONB,
  event_id TEXT NOT NULL,
  event_source TEXT NOT NULL,
  delivery_id BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX inbox_by_channel ON inbox (channel, id DESC);

CREATE TABLE kv (
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value JSONB,
  PRIMARY KEY (namespace, key)
);
`,
  },
  {
    version: 2,
    name: 'subscribers, subscriptions and feeds',
    sql: `
CREATE TABLE subscribers (
  id TEXT PRIMARY KEY,
  name TEXT,
  slack_user_id TEXT UNIQUE,
  email TEXT,
  preferences JSONB NOT NULL DEFAULT '{}',
  created_at BIGINT NOT NULL
);
CREATE INDEX subscribers_by_email ON subscribers (email);

CREATE TABLE subscriptions (
  key TEXT NOT NULL,
  subscriber_id TEXT NOT NULL REFERENCES subscribers (id),
  created_at BIGINT NOT NULL,
  PRIMARY KEY (key, subscriber_id)
);
CREATE INDEX subscriptions_by_subscriber ON subscriptions (subscriber_id, key);

CREATE TABLE feed (
  id BIGSERIAL PRIMARY KEY,
  key TEXT NOT NULL,
  event_seq BIGINT NOT NULL,
  at BIGINT NOT NULL,
  event JSONB NOT NULL
);
CREATE INDEX feed_by_key ON feed (key, id);
`,
  },
  {
    version: 3,
    name: 'indexes for the dashboard: events by source, dead letters by channel',
    sql: `
CREATE INDEX events_by_source ON events (source, seq DESC);
CREATE INDEX deliveries_dead_by_channel ON deliveries (channel, id DESC) WHERE status = 'dead';
`,
  },
  {
    version: 4,
    name: 'projections: view rows, applied event ids, projector cursors, alert outbox',
    sql: `
CREATE TABLE projection_rows (
  projection TEXT NOT NULL,
  key TEXT NOT NULL,
  value JSONB NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (projection, key)
);

CREATE TABLE projection_applied (
  projection TEXT NOT NULL,
  event_source TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_seq BIGINT NOT NULL,
  applied_at BIGINT NOT NULL,
  PRIMARY KEY (projection, event_source, event_id)
);

CREATE TABLE projection_cursors (
  projection TEXT PRIMARY KEY,
  seq BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE projection_outbox (
  id BIGSERIAL PRIMARY KEY,
  projection TEXT NOT NULL,
  event JSONB NOT NULL,
  created_at BIGINT NOT NULL
);
`,
  },
  {
    version: 5,
    name: 'events: the appending transaction, so projectors never pass an event that commits late',
    // pg_current_xact_id() is stable, so the rows already there take this migration's transaction
    // id as a stored default (no table rewrite): they sort by seq among themselves, before every
    // later append, which is what keeps a projection cursor written before the upgrade valid.
    sql: `
ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_by_tx ON events (tx, seq);
`,
  },
  {
    version: 6,
    name: 'rate limits: a token bucket per channel, shared by every dispatcher',
    // granted is the last take's grant: RETURNING shows only the new row, so the statement that
    // takes tokens leaves its grant there to read it back under the same row lock.
    sql: `
CREATE TABLE rate_buckets (
  channel TEXT PRIMARY KEY,
  tokens DOUBLE PRECISION NOT NULL,
  refilled_at BIGINT NOT NULL,
  granted INTEGER NOT NULL
);
`,
  },
  {
    version: 7,
    name: 'routing outcomes beside the events, not in their rows; no row locks for references',
    // Routing used to set events.routed_at, which the unrouted index's predicate names, so no
    // update of it could be HOT: every routed event rewrote its whole row and an entry in each of
    // its eight indexes. Now an append also queues the seq in unrouted_events, and routing deletes
    // it there and inserts its outcome into event_routing: narrow rows, one index each.
    //
    // The foreign keys from deliveries and attempts made every insert take a share lock on the
    // referenced row (dirtying its page) although the inserts only ever name rows they have just
    // read: deliveries join the events they plan for, attempts join the deliveries they update;
    // nothing deletes events or deliveries.
    sql: `
CREATE TABLE event_routing (
  seq BIGINT PRIMARY KEY,
  routed_at BIGINT NOT NULL,
  routing JSONB
);
INSERT INTO event_routing (seq, routed_at, routing) SELECT seq, routed_at, routing FROM events WHERE routed_at IS NOT NULL;
CREATE TABLE unrouted_events (seq BIGINT PRIMARY KEY);
INSERT INTO unrouted_events (seq) SELECT seq FROM events WHERE routed_at IS NULL;
ALTER TABLE events DROP COLUMN routed_at, DROP COLUMN routing;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_event_seq_fkey;
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_delivery_id_fkey;
`,
  },
  {
    version: 8,
    name: 'deliveries: room on each page, so a claim updates its row in place',
    // A claim sets only lease_until, which no index names, so its update can be HOT (no new index
    // entries) when the row's page has room for the new version. Deliveries are only appended, so
    // at the default fillfactor of 100 their pages were full: about one claim in six was HOT and
    // the rest moved the row and added an entry to each of the table's six indexes. At 50 nearly
    // every claim is HOT (4,885 of 5,000 in a test; 1,867 at 80), and the claim statement's time
    // in the distributed benchmark fell by about 60 %, for a deliveries heap about twice the size.
    // Applies to pages written from now on.
    sql: `
ALTER TABLE deliveries SET (fillfactor = 50);
`,
  },
  {
    version: 9,
    name: 'source dead letters: messages a stream source set aside instead of storing',
    // Headers are JSON in TEXT, not JSONB: JSONB refuses \u0000, and a header is the sender's text.
    sql: `
CREATE TABLE source_dead_letters (
  id BIGSERIAL PRIMARY KEY,
  source TEXT NOT NULL,
  position TEXT NOT NULL,
  subject TEXT,
  headers TEXT NOT NULL,
  payload TEXT NOT NULL,
  payload_encoding TEXT NOT NULL,
  payload_bytes INTEGER NOT NULL,
  truncated BOOLEAN NOT NULL,
  reason TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (source, position)
);
CREATE INDEX source_dead_letters_by_source ON source_dead_letters (source, id DESC);
`,
  },
  {
    version: 10,
    name: 'notification keys: dedupe, replace and throttle state per action and key',
    // A row is created (empty) before it is locked, so concurrent routers serialise on it.
    sql: `
CREATE TABLE notification_keys (
  scope TEXT NOT NULL,
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  window_start BIGINT,
  count INTEGER NOT NULL DEFAULT 0,
  delivery_key TEXT,
  event_seq BIGINT,
  event_id TEXT,
  PRIMARY KEY (scope, kind, key)
);
`,
  },
  {
    version: 11,
    name: 'digests: the events each digest delivery carries',
    // Written with the digest's key row (locked) in the routing transaction, so an open window
    // survives a restart and routers in every process add to the same digest.
    sql: `
CREATE TABLE digest_events (
  delivery_key TEXT NOT NULL,
  event_seq BIGINT NOT NULL,
  digest_key TEXT NOT NULL,
  PRIMARY KEY (delivery_key, event_seq)
);
`,
  },
  {
    version: 12,
    name: 'deliveries: a note on why the first attempt waits (quiet hours)',
    // Not last_error: a held delivery has failed nothing, and the note outlives its attempts.
    // A nullable column without a default: no rewrite of the table.
    sql: `
ALTER TABLE deliveries ADD COLUMN note TEXT;
`,
  },
];
