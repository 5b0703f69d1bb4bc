-- The credential vault. Secret fields are stored only sealed (see loft-core/src/vault.rs):
-- `ciphertext` under a per-credential data key, `wrapped_key` = that key under the master key
-- `master_key_id`. `meta` is the descriptive JSON (never a secret value).
CREATE TABLE vault_items (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id       TEXT    NOT NULL REFERENCES identities(id),
    name           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    meta           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    ciphertext     BLOB    NOT NULL,
    nonce          BLOB    NOT NULL,
    wrapped_key    BLOB    NOT NULL,
    wrap_nonce     BLOB    NOT NULL,
    master_key_id  TEXT    NOT NULL,
    UNIQUE (owner_id, name)
);
CREATE INDEX vault_items_master_key ON vault_items (master_key_id);

-- One key-check value per master key ever used: a constant sealed under it.
CREATE TABLE vault_master_keys (
    key_id      TEXT    PRIMARY KEY,
    nonce       BLOB    NOT NULL,
    check_value BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
