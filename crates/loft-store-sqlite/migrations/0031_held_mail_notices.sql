-- Held-mail notices (loft-core/src/notices.rs): the address a reviewer is told at, by mail,
-- when mail is held. One row per reviewer who asked; no row, no notices.
CREATE TABLE held_mail_notices (
    identity_id TEXT    NOT NULL PRIMARY KEY REFERENCES identities (id),
    address     TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
