-- The web console's people (loft-core/src/console.rs). Secrets are never stored in the clear:
-- a session or invite token only as its SHA-256 digest, a password only as an argon2id hash.

-- One row per signed-in browser. `identity_id` NULL: the operator (signed in with the
-- operator key); otherwise the person's own identity (a reviewer).
CREATE TABLE console_sessions (
    digest      TEXT    NOT NULL PRIMARY KEY,
    identity_id TEXT    REFERENCES identities (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE INDEX console_sessions_identity ON console_sessions (identity_id);

-- A person's console password, and the pending one-time invite that sets it.
CREATE TABLE console_logins (
    identity_id       TEXT    NOT NULL PRIMARY KEY REFERENCES identities (id),
    password_hash     TEXT,
    invite_digest     TEXT    UNIQUE,
    invite_expires_at BIGINT,
    updated_at        BIGINT NOT NULL
);
