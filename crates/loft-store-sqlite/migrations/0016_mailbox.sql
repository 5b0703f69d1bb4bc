-- The rest of the mailbox (docs/mailbox.md): archive and trash are two columns of each copy,
-- not folders, so a copy keeps its folder (`inbox`/`sent`), thread and sequence number while
-- it is archived or trashed, and restoring it is one update.
ALTER TABLE messages ADD COLUMN archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1));
-- When the copy was trashed; NULL when it is not in the trash.
ALTER TABLE messages ADD COLUMN trashed_at INTEGER;

-- `folder=trash` lists walk only the trashed copies of one mailbox.
CREATE INDEX messages_owner_trashed ON messages (owner_id, seq) WHERE trashed_at IS NOT NULL;
-- Deleting for ever asks whether another copy still shares a content row (and the foreign key
-- check on deleting that row asks the same): without this index, a scan of every mailbox.
CREATE INDEX messages_content ON messages (content_id);
-- Thread lists group one mailbox's copies by thread from this index alone; they now also ask
-- whether each copy is trashed, so the index carries that too (else a table read per copy).
DROP INDEX messages_owner_thread;
CREATE INDEX messages_owner_thread ON messages (owner_id, thread_id, seq, unread, trashed_at);
