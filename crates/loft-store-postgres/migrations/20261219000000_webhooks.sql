-- Webhook endpoints (loft_core::webhooks) and their delivery log. The signing secrets are
-- sealed by the vault keyring (never stored in clear); `prev_*` is the secret before the last
-- rotation while it overlaps. `position` is the last event given to the endpoint, `job_id`
-- its queued or running `webhook.deliver` job (at most one). `types` is `,a,b,` or '' (all).
CREATE TABLE webhooks (
    seq                 BIGSERIAL PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    owner_id            TEXT,
    identity_id         TEXT,
    url                 TEXT    NOT NULL,
    description         TEXT,
    types               TEXT    NOT NULL,
    enabled             BOOLEAN NOT NULL,
    disabled_reason     TEXT,
    position            BIGINT  NOT NULL,
    failures            BIGINT  NOT NULL DEFAULT 0,
    failing_since       BIGINT,
    job_id              BIGINT,
    version             BIGINT  NOT NULL,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    secret_ciphertext   BYTEA    NOT NULL,
    secret_nonce        BYTEA    NOT NULL,
    secret_wrapped_key  BYTEA    NOT NULL,
    secret_wrap_nonce   BYTEA    NOT NULL,
    secret_key_id       TEXT    NOT NULL,
    prev_ciphertext     BYTEA,
    prev_nonce          BYTEA,
    prev_wrapped_key    BYTEA,
    prev_wrap_nonce     BYTEA,
    prev_key_id         TEXT,
    prev_expires_at     BIGINT
);
CREATE INDEX webhooks_by_owner ON webhooks (owner_id, seq);

CREATE TABLE webhook_deliveries (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    webhook_id   TEXT    NOT NULL,
    event_seq    BIGINT  NOT NULL,
    event_type   TEXT    NOT NULL,
    attempt      BIGINT  NOT NULL,
    ok           BOOLEAN NOT NULL,
    status_code  BIGINT,
    duration_ms  BIGINT  NOT NULL,
    error        TEXT,
    replay       BOOLEAN NOT NULL,
    at           BIGINT  NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, seq);
