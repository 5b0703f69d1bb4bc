-- The address book: what an identity (or the operator for it) wrote about an address: a name,
-- notes and tags. Kept apart from `contacts`, which records only mail exchanged and is what
-- first-contact gating and the new-recipients caps read: an entry written by hand never makes
-- an address "known" to the gate, and forgetting one never erases that mail was exchanged.
CREATE TABLE address_book (
    identity_id TEXT    NOT NULL REFERENCES identities (id),
    address     TEXT    NOT NULL,
    name        TEXT,
    notes       TEXT,
    -- A JSON array of tags, sorted, each once.
    tags        TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (identity_id, address)
) WITHOUT ROWID;
