-- The credential vault. Secret fields are stored only sealed (see loft-core/src/vault.rs):
-- `ciphertext` under a per-credential data key, `wrapped_key` = that key under the master key
-- `master_key_id`. `meta` is the descriptive JSON (never a secret value).
CREATE TABLE vault_items (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id       TEXT   NOT NULL REFERENCES identities(id),
    name           TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    meta           TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    ciphertext     BYTEA  NOT NULL,
    nonce          BYTEA  NOT NULL,
    wrapped_key    BYTEA  NOT NULL,
    wrap_nonce     BYTEA  NOT NULL,
    master_key_id  TEXT   NOT NULL,
    CONSTRAINT vault_items_owner_name_key UNIQUE (owner_id, name)
);
CREATE INDEX vault_items_master_key ON vault_items (master_key_id);

CREATE TABLE vault_master_keys (
    key_id      TEXT   PRIMARY KEY,
    nonce       BYTEA  NOT NULL,
    check_value BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL
);
