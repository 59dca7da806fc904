/** Numbered schema migrations, applied in order; `PRAGMA user_version` records the last one. */
export const migrations: {
  version: number;
  name: string;
  sql: string;
  /** Rebuilds a table others reference: run with foreign keys off, checked before commit. */
  rebuildsTable?: boolean;
}[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  subject TEXT,
  received_at INTEGER NOT NULL,
  routed_at INTEGER,
  routing TEXT,
  event TEXT NOT NULL,
  UNIQUE (source, id)
);
CREATE INDEX events_unrouted ON events (seq) WHERE routed_at IS NULL;
CREATE INDEX events_by_id ON events (id);
CREATE INDEX events_by_type ON events (type, seq);
CREATE INDEX events_by_subject ON events (subject, seq);

CREATE TABLE deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_seq INTEGER NOT NULL REFERENCES events (seq),
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
  next_attempt_at INTEGER NOT NULL,
  lease_until INTEGER,
  last_error TEXT,
  remote_id TEXT,
  rendered TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (channel, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_status ON deliveries (status, id);
CREATE INDEX deliveries_by_event ON deliveries (event_seq);

CREATE TABLE attempts (
  delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
  number INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  error TEXT,
  next_attempt_at INTEGER
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);

CREATE TABLE inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  channel TEXT NOT NULL,
  recipient TEXT,
  message TEXT,
  event_id TEXT NOT NULL,
  event_source TEXT NOT NULL,
  delivery_id INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX inbox_by_channel ON inbox (channel, id);

CREATE TABLE kv (
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
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
  preferences TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
CREATE INDEX subscribers_by_email ON subscribers (email);

CREATE TABLE subscriptions (
  key TEXT NOT NULL,
  subscriber_id TEXT NOT NULL REFERENCES subscribers (id),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (key, subscriber_id)
) WITHOUT ROWID;
CREATE INDEX subscriptions_by_subscriber ON subscriptions (subscriber_id, key);

CREATE TABLE feed (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL,
  event_seq INTEGER NOT NULL,
  at INTEGER NOT NULL,
  event TEXT NOT NULL
);
CREATE INDEX feed_by_key ON feed (key, id);
`,
  },
  {
    version: 3,
    name: 'indexes for the dashboard: events by source, dead letters by channel',
    sql: `
CREATE INDEX events_by_source ON events (source, seq);
CREATE INDEX deliveries_dead_by_channel ON deliveries (channel, id) WHERE status = 'dead';
`,
  },
  {
    version: 4,
    name: 'projections: view rows, applied event ids, projector cursors, alert outbox',
    sql: `
CREATE TABLE projection_rows (
  projection TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (projection, key)
) WITHOUT ROWID;

CREATE TABLE projection_applied (
  projection TEXT NOT NULL,
  event_source TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_seq INTEGER NOT NULL,
  applied_at INTEGER NOT NULL,
  PRIMARY KEY (projection, event_source, event_id)
) WITHOUT ROWID;

CREATE TABLE projection_cursors (
  projection TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE projection_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  projection TEXT NOT NULL,
  event TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`,
  },
  {
    version: 5,
    name: 'events: identity index leads with id, so lookups by id need no index of their own',
    rebuildsTable: true,
    // Every index on the log costs each append; events_by_id served only lookups by id, which the
    // identity index now serves as well. SQLite cannot change a table's constraint in place.
    sql: `
CREATE TABLE events_rebuilt (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  subject TEXT,
  received_at INTEGER NOT NULL,
  routed_at INTEGER,
  routing TEXT,
  event TEXT NOT NULL,
  UNIQUE (id, source)
);
INSERT INTO events_rebuilt (seq, id, source, type, subject, received_at, routed_at, routing, event)
  SELECT seq, id, source, type, subject, received_at, routed_at, routing, event FROM events ORDER BY seq;
INSERT OR REPLACE INTO sqlite_sequence (name, seq)
  SELECT 'events_rebuilt', seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;
CREATE INDEX events_unrouted ON events (seq) WHERE routed_at IS NULL;
CREATE INDEX events_by_type ON events (type, seq);
CREATE INDEX events_by_subject ON events (subject, seq);
CREATE INDEX events_by_source ON events (source, seq);
`,
  },
  {
    version: 6,
    name: 'events by subject: indexed in batches behind the log instead of on every append',
    // A change event's subject is its row's key, so an index on it took one random page per
    // appended event (and one page write per event at each commit). The store fills this table
    // in batches (see indexSubjects) and reads the few events newer than it from the log itself.
    sql: `
CREATE TABLE event_subjects (
  subject TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (subject, seq)
) WITHOUT ROWID;
INSERT INTO event_subjects (subject, seq) SELECT subject, seq FROM events WHERE subject IS NOT NULL;
CREATE TABLE event_subjects_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  through_seq INTEGER NOT NULL
);
INSERT INTO event_subjects_state (id, through_seq) VALUES (1, COALESCE((SELECT max(seq) FROM events), 0));
DROP INDEX events_by_subject;
`,
  },
  {
    version: 7,
    name: 'source dead letters: messages a stream source set aside instead of storing',
    sql: `
CREATE TABLE source_dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL,
  position TEXT NOT NULL,
  subject TEXT,
  headers TEXT NOT NULL,
  payload TEXT NOT NULL,
  payload_encoding TEXT NOT NULL,
  payload_bytes INTEGER NOT NULL,
  truncated INTEGER NOT NULL,
  reason TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (source, position)
);
CREATE INDEX source_dead_letters_by_source ON source_dead_letters (source, id);
`,
  },
  {
    version: 8,
    name: 'notification keys: dedupe, replace and throttle state per action and key',
    // Suppressed deliveries are delivery rows (status `suppressed`, the reason in last_error), so
    // the only new state is what each key has let through.
    sql: `
CREATE TABLE notification_keys (
  scope TEXT NOT NULL,
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  window_start INTEGER,
  count INTEGER NOT NULL DEFAULT 0,
  delivery_key TEXT,
  event_seq INTEGER,
  event_id TEXT,
  PRIMARY KEY (scope, kind, key)
);
`,
  },
  {
    version: 9,
    name: 'digests: the events each digest delivery carries',
    // Written with the digest's key row in the routing transaction, so an open window survives a
    // restart. Keyed by the delivery's idempotency key, which exists before its row id does.
    sql: `
CREATE TABLE digest_events (
  delivery_key TEXT NOT NULL,
  event_seq INTEGER NOT NULL,
  digest_key TEXT NOT NULL,
  PRIMARY KEY (delivery_key, event_seq)
) WITHOUT ROWID;
`,
  },
  {
    version: 10,
    name: 'deliveries: a note on why the first attempt waits (quiet hours)',
    // Not last_error: a held delivery has failed nothing, and the note outlives its attempts.
    sql: `
ALTER TABLE deliveries ADD COLUMN note TEXT;
`,
  },
  {
    version: 11,
    name: 'deliveries: the attempt that delivered is kept on its delivery; the status index leaves delivered out',
    // Most deliveries are delivered at the first attempt: an attempts row and its index entry
    // for each cost two of the pages every outcome commit writes. The status index served the
    // lists of pending, dead and suppressed deliveries; delivered ones are most of the table and
    // are listed newest first from the table itself, so their entries were pages written for nothing.
    // Its condition is a list of equalities because SQLite uses a partial index for a query only
    // when one of the query's terms is one of the condition's (`status <> 'delivered'` is never).
    sql: `
ALTER TABLE deliveries ADD COLUMN delivered_started_at INTEGER;
ALTER TABLE deliveries ADD COLUMN delivered_ms INTEGER;
DROP INDEX deliveries_by_status;
CREATE INDEX deliveries_by_status ON deliveries (status, id)
  WHERE status = 'pending' OR status = 'dead' OR status = 'suppressed';
`,
  },
  {
    version: 12,
    name: 'deliveries: unique by event and idempotency key, so a new delivery adds to the end of its indexes',
    rebuildsTable: true,
    // An idempotency key is a hash, so a unique index on it alone took a page at a random place
    // for every delivery stored, and at a busy rate most of what each commit wrote. A key is
    // derived from its event's identity, so every delivery with a given key belongs to one event:
    // unique (event_seq, idempotency_key) says the same, sorts new deliveries after the old ones,
    // and serves the lookups by event that deliveries_by_event served. SQLite cannot drop a
    // column's UNIQUE in place; the table is rebuilt, its ids and numbering kept.
    sql: `
CREATE TABLE deliveries_rebuilt (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_seq INTEGER NOT NULL REFERENCES events (seq),
  event_id TEXT NOT NULL,
  event_source TEXT NOT NULL,
  event_type TEXT NOT NULL,
  trigger TEXT NOT NULL,
  action INTEGER NOT NULL,
  channel TEXT NOT NULL,
  recipient TEXT,
  idempotency_key TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  lease_until INTEGER,
  last_error TEXT,
  remote_id TEXT,
  rendered TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  note TEXT,
  delivered_started_at INTEGER,
  delivered_ms INTEGER
);
INSERT INTO deliveries_rebuilt (id, event_seq, event_id, event_source, event_type, trigger, action, channel,
  recipient, idempotency_key, status, attempts, max_attempts, next_attempt_at, lease_until, last_error, remote_id,
  rendered, created_at, updated_at, note, delivered_started_at, delivered_ms)
  SELECT id, event_seq, event_id, event_source, event_type, trigger, action, channel,
    recipient, idempotency_key, status, attempts, max_attempts, next_attempt_at, lease_until, last_error, remote_id,
    rendered, created_at, updated_at, note, delivered_started_at, delivered_ms FROM deliveries ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'deliveries_rebuilt';
INSERT INTO sqlite_sequence (name, seq) SELECT 'deliveries_rebuilt', seq FROM sqlite_sequence WHERE name = 'deliveries';
DROP TABLE deliveries;
ALTER TABLE deliveries_rebuilt RENAME TO deliveries;
CREATE UNIQUE INDEX deliveries_by_event ON deliveries (event_seq, idempotency_key);
CREATE INDEX deliveries_due ON deliveries (channel, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_status ON deliveries (status, id)
  WHERE status = 'pending' OR status = 'dead' OR status = 'suppressed';
CREATE INDEX deliveries_dead_by_channel ON deliveries (channel, id) WHERE status = 'dead';
`,
  },
  {
    version: 13,
    name: 'events by type and by source: indexed in batches behind the log, as subjects are',
    // Each index on the log costs every append a page of its own, which at one event per commit
    // was two of the dozen pages a commit wrote. The tables cover the log through the same seq as
    // event_subjects (event_subjects_state); lookups read the events newer than that from the log.
    sql: `
CREATE TABLE event_types (
  type TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (type, seq)
) WITHOUT ROWID;
CREATE TABLE event_sources (
  source TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (source, seq)
) WITHOUT ROWID;
INSERT INTO event_types (type, seq)
  SELECT type, seq FROM events WHERE seq <= (SELECT through_seq FROM event_subjects_state WHERE id = 1)
  ORDER BY type, seq;
INSERT INTO event_sources (source, seq)
  SELECT source, seq FROM events WHERE seq <= (SELECT through_seq FROM event_subjects_state WHERE id = 1)
  ORDER BY source, seq;
DROP INDEX events_by_type;
DROP INDEX events_by_source;
`,
  },
];
