-- The operator's allow / block / hold rules for sending, receiving and replying, for one
-- identity (`identity_id`) or for every identity (`identity_id` NULL: an instance rule).

CREATE TABLE rules (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    identity_id TEXT    REFERENCES identities (id),
    direction   TEXT    NOT NULL CHECK (direction IN ('send', 'receive', 'reply')),
    action      TEXT    NOT NULL CHECK (action IN ('allow', 'block', 'hold')),
    -- `bob@example.com`, `*@example.com` or `*`, normalised by loft-core.
    pattern     TEXT    NOT NULL,
    note        TEXT,
    created_at  INTEGER NOT NULL,
    -- `operator`, or the id of the identity that added it.
    created_by  TEXT    NOT NULL
);
-- One rule per (identity or instance, direction, action, pattern).
CREATE UNIQUE INDEX rules_unique ON rules (COALESCE(identity_id, ''), direction, action, pattern);
-- Every send reads the rules of its sender, its local recipients and the instance.
CREATE INDEX rules_identity ON rules (identity_id, seq);
