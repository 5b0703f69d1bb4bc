-- Loft's SQLite schema, version 1.
--
-- Conventions: ids are TEXT (`idt_...`, `key_...`, `msg_...`, `thr_...`); timestamps are
-- INTEGER unix microseconds; lists and scope sets are JSON text. Tables that are listed with a
-- cursor carry an AUTOINCREMENT `seq` so that a sequence number is never reused.

-- Identities and their delegation chain (`parent_id` is the identity that created it).
CREATE TABLE identities (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    name           TEXT    NOT NULL,
    display_name   TEXT,
    -- Unique across all identities, revoked ones included: addresses are never reused.
    address        TEXT    NOT NULL UNIQUE,
    scopes         TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    creator_kind   TEXT    NOT NULL CHECK (creator_kind IN ('operator', 'identity')),
    parent_id      TEXT    REFERENCES identities (id),
    creator_key_id TEXT
);
CREATE INDEX identities_parent ON identities (parent_id);

-- API keys: only the SHA-256 digest of the secret, as hex.
CREATE TABLE api_keys (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    identity_id    TEXT    NOT NULL REFERENCES identities (id),
    digest         TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('primary', 'extra')),
    label          TEXT,
    scopes         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    created_by_key TEXT
);
CREATE INDEX api_keys_identity ON api_keys (identity_id, seq);

-- What every copy of one message shares: the bodies, and (in `mail_raw`) the RFC 5322 bytes.
CREATE TABLE mail_contents (
    id             INTEGER PRIMARY KEY,
    text           TEXT    NOT NULL,
    html           TEXT,
    extracted_text TEXT    NOT NULL
);

-- Kept apart so that no query reads the raw bytes unless it asks for them.
CREATE TABLE mail_raw (
    content_id INTEGER PRIMARY KEY REFERENCES mail_contents (id),
    raw        BLOB    NOT NULL
);

-- One copy of a message in one mailbox. Everything a list needs is here (headers, snippet),
-- so lists never touch the bodies.
CREATE TABLE messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    owner_id       TEXT    NOT NULL REFERENCES identities (id),
    thread_id      TEXT    NOT NULL,
    folder         TEXT    NOT NULL CHECK (folder IN ('inbox', 'sent')),
    content_id     INTEGER NOT NULL REFERENCES mail_contents (id),
    -- The RFC 5322 Message-ID, without angle brackets.
    message_id     TEXT    NOT NULL,
    in_reply_to    TEXT,
    refs           TEXT    NOT NULL,
    from_addr      TEXT    NOT NULL,
    from_name      TEXT,
    to_addrs       TEXT    NOT NULL,
    cc_addrs       TEXT    NOT NULL,
    -- Only ever non-empty on the sender's own copy.
    bcc_addrs      TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    snippet        TEXT    NOT NULL,
    authentication TEXT    NOT NULL,
    unread         INTEGER NOT NULL CHECK (unread IN (0, 1)),
    created_at     INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    -- Per-recipient delivery, on sent copies.
    delivery       TEXT    NOT NULL
);
CREATE INDEX messages_owner ON messages (owner_id, seq);
CREATE INDEX messages_owner_folder ON messages (owner_id, folder, seq);
CREATE INDEX messages_owner_thread ON messages (owner_id, thread_id, seq, unread);
CREATE INDEX messages_owner_message_id ON messages (owner_id, message_id, seq);

CREATE TABLE message_labels (
    message_seq INTEGER NOT NULL REFERENCES messages (seq),
    label       TEXT    NOT NULL,
    PRIMARY KEY (message_seq, label)
) WITHOUT ROWID;
CREATE INDEX message_labels_label ON message_labels (label, message_seq);

-- Remote recipients waiting for outbound SMTP delivery.
CREATE TABLE outbound_queue (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_seq     INTEGER NOT NULL REFERENCES messages (seq),
    recipient       TEXT    NOT NULL,
    -- `queued` when written here; the delivery worker owns the later states.
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX outbound_queue_due ON outbound_queue (status, next_attempt_at);

-- The hash-chained audit log (see loft_core::audit). `details` is TEXT, never re-encoded, so
-- the bytes the hash covers survive a round trip.
CREATE TABLE audit_log (
    seq               INTEGER PRIMARY KEY,
    at                INTEGER NOT NULL,
    actor_kind        TEXT    NOT NULL,
    actor_identity_id TEXT,
    key_id            TEXT,
    action            TEXT    NOT NULL,
    target            TEXT,
    outcome           TEXT    NOT NULL,
    request_id        TEXT,
    remote_addr       TEXT,
    details           TEXT    NOT NULL,
    prev_hash         TEXT    NOT NULL,
    hash              TEXT    NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor_identity_id, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only inside Loft: a bug that tried to change history fails loudly. (Someone with the
-- file can drop these triggers; the hash chain is what detects that kind of change.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only');
END;

-- The one chain head: every append reads and moves it inside the writing transaction
-- (BEGIN IMMEDIATE holds the database write lock, so appends are serial across processes).
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
