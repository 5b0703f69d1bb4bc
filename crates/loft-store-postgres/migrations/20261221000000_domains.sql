-- Hosted mail domains (besides `loft serve --domain`, which is hosted without a row) and their
-- DKIM keys. A private key is stored only sealed by the vault keyring, as credentials are
-- (`vault::seal_domain_key`: its own data key, wrapped by the master key `master_key_id`), so
-- `vault rotate-key` rewraps these too.
CREATE TABLE domains (
    name       TEXT   NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE domain_keys (
    domain        TEXT   NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
    selector      TEXT   NOT NULL,
    -- `ed25519` or `rsa`.
    algorithm     TEXT   NOT NULL,
    -- Base64, as in the DNS record's `p=` tag.
    public_key    TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    ciphertext    BYTEA  NOT NULL,
    nonce         BYTEA  NOT NULL,
    wrapped_key   BYTEA  NOT NULL,
    wrap_nonce    BYTEA  NOT NULL,
    master_key_id TEXT   NOT NULL,
    PRIMARY KEY (domain, selector)
);
