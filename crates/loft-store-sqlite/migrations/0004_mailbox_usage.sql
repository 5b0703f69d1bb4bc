-- The bytes of mail in each mailbox, kept as a running total by every send so that the
-- mailbox quota is a key lookup rather than a scan of a mailbox that may hold millions of
-- messages.
CREATE TABLE mailbox_usage (
    owner_id TEXT    PRIMARY KEY REFERENCES identities (id),
    bytes    INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO mailbox_usage (owner_id, bytes)
SELECT owner_id, SUM(size) FROM messages GROUP BY owner_id;
