-- The bytes of mail in each mailbox, kept as a running total by every send so that the
-- mailbox quota is a key lookup rather than a scan of a mailbox that may hold millions of
-- messages.
CREATE TABLE mailbox_usage (
    owner_id TEXT   PRIMARY KEY REFERENCES identities (id),
    bytes    BIGINT NOT NULL
);

INSERT INTO mailbox_usage (owner_id, bytes)
SELECT m.owner_id, SUM(c.size) FROM messages m JOIN mail_contents c ON c.id = m.content_id GROUP BY m.owner_id;
