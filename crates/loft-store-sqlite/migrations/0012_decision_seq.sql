-- Decisions on held mail, numbered per composing identity in the order they were made, so
-- the composer's `mail_wait` can report each decision once, resuming from a cursor like mail.
-- SQLite has one writer: the next number is the identity's highest plus one.
ALTER TABLE approvals ADD COLUMN decided_seq INTEGER;
UPDATE approvals SET decided_seq = (
    SELECT COUNT(*) FROM approvals b
    WHERE b.identity_id = approvals.identity_id AND b.decided_at IS NOT NULL
      AND (b.decided_at < approvals.decided_at OR (b.decided_at = approvals.decided_at AND b.seq <= approvals.seq))
) WHERE decided_at IS NOT NULL;
CREATE UNIQUE INDEX approvals_decided ON approvals (identity_id, decided_seq) WHERE decided_seq IS NOT NULL;
