-- Background work with leases (loft_core::jobs): identical columns on both backends. Claims
-- use FOR UPDATE SKIP LOCKED and no job change takes the audit chain head's lock.
CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT    NOT NULL,
    -- JSON arguments; never a secret.
    payload      TEXT    NOT NULL,
    owner_id     TEXT    REFERENCES identities (id),
    status       TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at       BIGINT  NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    created_at   BIGINT  NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX jobs_due_idx ON jobs (kind, status, run_at);
