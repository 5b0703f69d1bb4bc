-- The rest of the mailbox (docs/mailbox.md): archive and trash are two columns of each copy,
-- not folders, so a copy keeps its folder (`inbox`/`sent`), thread and sequence number while
-- it is archived or trashed, and restoring it is one update.
ALTER TABLE messages ADD COLUMN archived BOOLEAN NOT NULL DEFAULT FALSE;
-- When the copy was trashed (unix microseconds); NULL when it is not in the trash.
ALTER TABLE messages ADD COLUMN trashed_at BIGINT;

-- `folder=trash` lists walk only the trashed copies of one mailbox.
CREATE INDEX messages_owner_trashed_idx ON messages (owner_id, seq) WHERE trashed_at IS NOT NULL;
