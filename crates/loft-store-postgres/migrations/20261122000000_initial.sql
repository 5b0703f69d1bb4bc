-- Loft on PostgreSQL: the initial schema.
--
-- Conventions (shared with the SQLite store, so both behave identically):
-- * ids are TEXT (`idt_...`, `key_...`, `msg_...`, `thr_...`);
-- * timestamps are BIGINT unix microseconds (the audit hash covers them; no timezone games);
-- * lists and small structures (scope sets, address lists, delivery, authentication) are TEXT
--   holding JSON written by serde_json, never jsonb: jsonb reorders object keys and would
--   break the audit hash for `details`;
-- * every row that is listed with a cursor has a BIGINT `seq` from an identity column.

-- ---------------------------------------------------------------------------------------
-- Identities and keys
-- ---------------------------------------------------------------------------------------

CREATE TABLE identities (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    display_name   TEXT,
    -- Unique across all identities, revoked ones included: addresses are never reused.
    address        TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    creator_kind   TEXT NOT NULL CHECK (creator_kind IN ('operator', 'identity')),
    -- The delegation chain: the identity that created this one (NULL for the operator).
    parent_id      TEXT REFERENCES identities (id),
    creator_key_id TEXT,
    CONSTRAINT identities_seq_key UNIQUE (seq),
    CONSTRAINT identities_address_key UNIQUE (address)
);
CREATE INDEX identities_parent_idx ON identities (parent_id);

CREATE TABLE api_keys (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    id             TEXT PRIMARY KEY,
    identity_id    TEXT NOT NULL REFERENCES identities (id),
    -- SHA-256 of the secret, hex. The secret itself is never stored.
    digest         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    label          TEXT,
    scopes         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT,
    revoked_at     BIGINT,
    created_by_key TEXT,
    CONSTRAINT api_keys_seq_key UNIQUE (seq)
);
CREATE INDEX api_keys_identity_idx ON api_keys (identity_id, seq);

-- ---------------------------------------------------------------------------------------
-- Mail
-- ---------------------------------------------------------------------------------------

-- What every copy of one message shares: headers, bodies and the raw RFC 5322 bytes,
-- stored once however many local recipients there are.
CREATE TABLE mail_contents (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id     TEXT NOT NULL,
    in_reply_to    TEXT,
    refs           TEXT NOT NULL,
    from_addr      TEXT NOT NULL,
    from_name      TEXT,
    to_addrs       TEXT NOT NULL,
    cc_addrs       TEXT NOT NULL,
    subject        TEXT NOT NULL,
    body_text      TEXT NOT NULL,
    body_html      TEXT,
    extracted_text TEXT NOT NULL,
    -- `text::snippet(extracted_text, SNIPPET_CHARS)`, so that lists never load bodies.
    snippet        TEXT NOT NULL,
    authentication TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    size           BIGINT NOT NULL,
    -- Loaded only by `raw_message`.
    raw            BYTEA NOT NULL
);

-- One copy of a message in one mailbox. `seq` orders mailboxes and is the list cursor.
CREATE TABLE messages (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES identities (id),
    thread_id  TEXT NOT NULL,
    folder     TEXT NOT NULL CHECK (folder IN ('inbox', 'sent')),
    content_id BIGINT NOT NULL REFERENCES mail_contents (id),
    -- The `Message-ID` header again, so threading looks up one mailbox with one index.
    message_id TEXT NOT NULL,
    -- Only the sender's own copy carries Bcc and the delivery list.
    bcc_addrs  TEXT NOT NULL DEFAULT '[]',
    delivery   TEXT NOT NULL DEFAULT '[]',
    unread     BOOLEAN NOT NULL,
    CONSTRAINT messages_id_key UNIQUE (id)
);
CREATE INDEX messages_owner_seq_idx ON messages (owner_id, seq);
CREATE INDEX messages_owner_thread_idx ON messages (owner_id, thread_id, seq);
CREATE INDEX messages_owner_message_id_idx ON messages (owner_id, message_id);
CREATE INDEX messages_content_idx ON messages (content_id);

CREATE TABLE message_labels (
    message_seq BIGINT NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    PRIMARY KEY (message_seq, label)
);
CREATE INDEX message_labels_label_idx ON message_labels (label, message_seq);

-- Remote recipients waiting for outbound SMTP (the delivery worker is not written yet).
CREATE TABLE outbound_queue (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The sender's copy, which carries the delivery list shown to the sender.
    message_seq     BIGINT NOT NULL REFERENCES messages (seq),
    content_id      BIGINT NOT NULL REFERENCES mail_contents (id),
    sender          TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbound_queue_due_idx ON outbound_queue (status, next_attempt_at);

-- ---------------------------------------------------------------------------------------
-- Audit
-- ---------------------------------------------------------------------------------------

-- The chain head: one row. Every mutating transaction locks it first
-- (`SELECT ... FOR UPDATE`), which serialises audit appends across all server processes.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_log (
    -- Assigned from the chain head (prev + 1), not from a sequence: the hash covers it.
    seq               BIGINT PRIMARY KEY,
    at                BIGINT NOT NULL,
    actor_kind        TEXT NOT NULL,
    actor_identity_id TEXT,
    key_id            TEXT,
    action            TEXT NOT NULL,
    target            TEXT,
    outcome           TEXT NOT NULL,
    request_id        TEXT,
    remote_addr       TEXT,
    -- serde_json text, byte for byte what was hashed.
    details           TEXT NOT NULL,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL
);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_identity_id, seq);
-- text_pattern_ops serves both `action = $1` and the prefix form `action LIKE 'mail.%'`.
CREATE INDEX audit_log_action_idx ON audit_log (action text_pattern_ops);
CREATE INDEX audit_log_at_idx ON audit_log (at);
