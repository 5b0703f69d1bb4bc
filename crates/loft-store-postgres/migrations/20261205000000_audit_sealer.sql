-- Audit rows are no longer chained by the transaction that writes them: that needed every
-- writer of every node to lock the one `audit_head` row. A writer now appends its rows here,
-- unchained, in its own transaction; the sealer (src/sealer.rs) moves them into `audit_log`
-- in batches, giving each its sequence number and hash after the head, under an advisory lock
-- that only sealers take. `audit_log` and `audit_head` keep their meaning: sealed rows only.
CREATE TABLE audit_pending (
    -- Only orders a batch; the sealed row's `seq` comes from the chain head.
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                BIGINT NOT NULL,
    actor_kind        TEXT NOT NULL,
    actor_identity_id TEXT,
    key_id            TEXT,
    action            TEXT NOT NULL,
    target            TEXT,
    outcome           TEXT NOT NULL,
    request_id        TEXT,
    remote_addr       TEXT,
    -- serde_json text, byte for byte what will be hashed.
    details           TEXT NOT NULL,
    -- The database's clock when the row was written: the sealer reports how long rows wait
    -- (not hashed; `at` is the entry's time from Loft's clock).
    written_at        BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
);

-- Mail ordering no longer comes from that lock either: a send upserts the `mailbox_usage`
-- row of every mailbox it writes to (in id order) before it takes sequence numbers for its
-- copies, and holds those row locks until it commits, so within one mailbox a higher
-- `messages.seq` never becomes visible before a lower one (see src/mail.rs).
