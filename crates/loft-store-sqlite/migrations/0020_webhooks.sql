-- Webhook endpoints (loft_core::webhooks) and their delivery log. The signing secrets are
-- sealed by the vault keyring (never stored in clear); `prev_*` is the secret before the last
-- rotation while it overlaps. `position` is the last event given to the endpoint, `job_id`
-- its queued or running `webhook.deliver` job (at most one). `types` is `,a,b,` or '' (all).
CREATE TABLE webhooks (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT    NOT NULL UNIQUE,
    owner_id            TEXT,
    identity_id         TEXT,
    url                 TEXT    NOT NULL,
    description         TEXT,
    types               TEXT    NOT NULL,
    enabled             INTEGER NOT NULL,
    disabled_reason     TEXT,
    position            INTEGER NOT NULL,
    failures            INTEGER NOT NULL DEFAULT 0,
    failing_since       INTEGER,
    job_id              INTEGER,
    version             INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    secret_ciphertext   BLOB    NOT NULL,
    secret_nonce        BLOB    NOT NULL,
    secret_wrapped_key  BLOB    NOT NULL,
    secret_wrap_nonce   BLOB    NOT NULL,
    secret_key_id       TEXT    NOT NULL,
    prev_ciphertext     BLOB,
    prev_nonce          BLOB,
    prev_wrapped_key    BLOB,
    prev_wrap_nonce     BLOB,
    prev_key_id         TEXT,
    prev_expires_at     INTEGER
);
CREATE INDEX webhooks_by_owner ON webhooks (owner_id, seq);

CREATE TABLE webhook_deliveries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    webhook_id   TEXT    NOT NULL,
    event_seq    INTEGER NOT NULL,
    event_type   TEXT    NOT NULL,
    attempt      INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    status_code  INTEGER,
    duration_ms  INTEGER NOT NULL,
    error        TEXT,
    replay       INTEGER NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, seq);
