-- Held incoming mail (loft_core::oversight::HeldCopy): a copy for a recipient in `gated_all`,
-- or whose `receive` hold rule matches the sender, is kept here, apart from every mailbox,
-- until a reviewer releases it; its approval has direction `receive` and names the copy's id,
-- which is in `messages` only once released. So `approvals.message_id` no longer references
-- `messages`.
ALTER TABLE approvals DROP CONSTRAINT approvals_message_id_fkey;
ALTER TABLE approvals ADD COLUMN direction TEXT NOT NULL DEFAULT 'send' CHECK (direction IN ('send', 'receive'));

-- One held incoming copy: the content it shares with the mail's other copies, and what its
-- `messages` row needs once released. `content_id` is cleared at the release (the inbox copy
-- refers to the content from then on).
CREATE TABLE held_mail (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT   NOT NULL UNIQUE,
    owner_id      TEXT   NOT NULL REFERENCES identities (id),
    new_thread_id TEXT   NOT NULL,
    content_id    BIGINT REFERENCES mail_contents (id),
    -- JSON array: the Message-ID, In-Reply-To and References (what the copy is threaded by).
    parents       TEXT   NOT NULL
);
CREATE INDEX held_mail_content_idx ON held_mail (content_id) WHERE content_id IS NOT NULL;
