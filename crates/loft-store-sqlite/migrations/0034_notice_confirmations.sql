-- Held-mail notices to an outside address (loft-core/src/notices.rs): the address is used only
-- after the reviewer typed the code mailed there. One pending confirmation per reviewer; the
-- code itself is never stored, only its SHA-256.
CREATE TABLE notice_confirmations (
    identity_id TEXT    NOT NULL PRIMARY KEY REFERENCES identities (id),
    address     TEXT    NOT NULL,
    code_hash   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
