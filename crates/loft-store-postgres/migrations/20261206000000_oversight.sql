-- Oversight: each identity's mode, each message copy's status, and the approvals of held mail.

-- Identities that existed before oversight keep the behaviour they had (their mail went out
-- at once): an upgrade must not silently stop a running crew's mail. New identities get the
-- server's default (gated_send unless the operator chose another), written explicitly.
ALTER TABLE identities ADD COLUMN oversight_mode TEXT NOT NULL DEFAULT 'autonomous'
    CHECK (oversight_mode IN ('read_only', 'gated_all', 'gated_send', 'monitored', 'autonomous'));

ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'sent'
    CHECK (status IN ('received', 'sent', 'pending_approval', 'rejected', 'expired'));
UPDATE messages SET status = 'received' WHERE folder = 'inbox';

-- One row per held mail. The mail itself is the sender's copy (`message_id`); the recipients'
-- copies are written when it is approved, by the transaction that moves `status` out of
-- `pending` (its row lock makes the decision happen once).
CREATE TABLE approvals (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT   NOT NULL UNIQUE,
    identity_id TEXT   NOT NULL REFERENCES identities (id),
    message_id  TEXT   NOT NULL UNIQUE REFERENCES messages (id),
    status      TEXT   NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    -- JSON array of hold reasons (never a secret value).
    reasons     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    decided_at  BIGINT,
    -- JSON: who decided.
    decided_by  TEXT,
    reason      TEXT
);
CREATE INDEX approvals_status_idx ON approvals (status, seq);
CREATE INDEX approvals_identity_idx ON approvals (identity_id, seq);

-- The kill switches: one identity paused (its keys refused, its mail kept), or all outgoing
-- mail frozen (one row, read on every send by every node).
ALTER TABLE identities ADD COLUMN paused_at BIGINT;
CREATE TABLE instance_state (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    outgoing_frozen_at BIGINT
);
INSERT INTO instance_state (id, outgoing_frozen_at) VALUES (1, NULL);

-- Idempotency keys of sends and replies: per identity, remembered 24 hours (a stale record
-- is replaced by the next send with its key). The fingerprint is a hash of the request.
CREATE TABLE idempotency_keys (
    identity_id TEXT   NOT NULL REFERENCES identities (id),
    key         TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    message_id  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (identity_id, key)
);
