-- Background work with leases (loft_core::jobs): identical columns on both backends.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    -- JSON arguments; never a secret.
    payload      TEXT    NOT NULL,
    owner_id     TEXT    REFERENCES identities (id),
    status       TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
-- Claims look for due queued jobs and expired leases of some kinds, oldest first.
CREATE INDEX jobs_due ON jobs (kind, status, run_at);
