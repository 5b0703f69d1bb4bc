-- Held incoming mail (loft_core::oversight::HeldCopy): a copy for a recipient in `gated_all`,
-- or whose `receive` hold rule matches the sender, is kept here, apart from every mailbox,
-- until a reviewer releases it; its approval has direction `receive` and names the copy's id,
-- which is in `messages` only once released. So `approvals.message_id` no longer references
-- `messages` (SQLite cannot drop a foreign key: the table is rebuilt; nothing references it).
CREATE TABLE approvals_new (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    identity_id TEXT    NOT NULL REFERENCES identities (id),
    -- `send`: the sender copy; `receive`: the held copy (`held_mail.id`).
    message_id  TEXT    NOT NULL UNIQUE,
    direction   TEXT    NOT NULL DEFAULT 'send' CHECK (direction IN ('send', 'receive')),
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    reasons     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    decided_at  INTEGER,
    decided_by  TEXT,
    reason      TEXT,
    decided_seq INTEGER,
    edit_count  INTEGER NOT NULL DEFAULT 0,
    edited_at   INTEGER,
    edited_by   TEXT
);
INSERT INTO approvals_new (seq, id, identity_id, message_id, direction, status, reasons, created_at, expires_at,
                           decided_at, decided_by, reason, decided_seq, edit_count, edited_at, edited_by)
SELECT seq, id, identity_id, message_id, 'send', status, reasons, created_at, expires_at,
       decided_at, decided_by, reason, decided_seq, edit_count, edited_at, edited_by
FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_new RENAME TO approvals;
CREATE INDEX approvals_status ON approvals (status, seq);
CREATE INDEX approvals_identity ON approvals (identity_id, seq);
CREATE UNIQUE INDEX approvals_decided ON approvals (identity_id, decided_seq) WHERE decided_seq IS NOT NULL;

-- One held incoming copy: what its `messages` row will hold once released. `content_id` is
-- cleared at the release (the inbox copy refers to the content from then on); the row stays,
-- with its headers, for the approval's listing.
CREATE TABLE held_mail (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    owner_id       TEXT    NOT NULL REFERENCES identities (id),
    new_thread_id  TEXT    NOT NULL,
    content_id     INTEGER REFERENCES mail_contents (id),
    -- JSON array: the Message-ID, In-Reply-To and References (what the copy is threaded by).
    parents        TEXT    NOT NULL,
    message_id     TEXT    NOT NULL,
    in_reply_to    TEXT,
    refs           TEXT    NOT NULL,
    from_addr      TEXT    NOT NULL,
    from_name      TEXT,
    to_addrs       TEXT    NOT NULL,
    cc_addrs       TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    snippet        TEXT    NOT NULL,
    authentication TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    size           INTEGER NOT NULL
);
CREATE INDEX held_mail_content ON held_mail (content_id) WHERE content_id IS NOT NULL;
