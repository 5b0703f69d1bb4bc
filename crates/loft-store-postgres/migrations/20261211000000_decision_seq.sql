-- Decisions on held mail, numbered per composing identity in the order they commit, so the
-- composer's `mail_wait` can report each decision once, resuming from a cursor like mail.
-- The number comes from the identity's row in `decision_heads`, bumped by the deciding
-- transaction: its row lock makes a later decision of the same identity wait for the earlier
-- one to commit, so a reader never sees number n+1 before n.
ALTER TABLE approvals ADD COLUMN decided_seq BIGINT;
UPDATE approvals a SET decided_seq = n.rn
FROM (
    SELECT seq, row_number() OVER (PARTITION BY identity_id ORDER BY decided_at, seq) AS rn
    FROM approvals WHERE decided_at IS NOT NULL
) n
WHERE a.seq = n.seq;
CREATE UNIQUE INDEX approvals_decided_idx ON approvals (identity_id, decided_seq) WHERE decided_seq IS NOT NULL;

CREATE TABLE decision_heads (
    identity_id TEXT   PRIMARY KEY REFERENCES identities (id),
    seq         BIGINT NOT NULL
);
INSERT INTO decision_heads (identity_id, seq)
SELECT identity_id, MAX(decided_seq) FROM approvals WHERE decided_seq IS NOT NULL GROUP BY identity_id;
