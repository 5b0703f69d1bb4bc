-- Events (loft_core::events): written by the writer with the audit row of the change that
-- raised them, numbered as they are inserted. With one writer, numbers become visible in
-- order, so a reader resuming after event n never misses one. AUTOINCREMENT: a number is
-- never reused, even if the newest events are ever pruned.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    identity_id TEXT,
    audit_seq   INTEGER,
    payload     TEXT    NOT NULL
);
CREATE INDEX events_by_identity ON events (identity_id, seq);
