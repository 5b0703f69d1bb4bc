-- Reviewers' edits of held mail (the mail itself, the sender's copy, is rewritten in place):
-- how many edits, and the last one's time and editor. A decision checks the count, so that an
-- approval never releases a version of the mail other than the one it planned recipients for.
ALTER TABLE approvals ADD COLUMN edit_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE approvals ADD COLUMN edited_at BIGINT;
-- JSON: who edited last.
ALTER TABLE approvals ADD COLUMN edited_by TEXT;

-- Requests for another oversight mode: at most one per identity (a new one replaces it). Open
-- until the operator sets the identity's mode (which deletes it) or denies it (kept, with the
-- reason, until the identity asks again).
CREATE TABLE oversight_mode_requests (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identity_id   TEXT   NOT NULL UNIQUE REFERENCES identities (id),
    mode          TEXT   NOT NULL
        CHECK (mode IN ('read_only', 'gated_all', 'gated_send', 'monitored', 'autonomous')),
    reason        TEXT   NOT NULL,
    status        TEXT   NOT NULL CHECK (status IN ('open', 'denied')),
    requested_at  BIGINT NOT NULL,
    decided_at    BIGINT,
    denial_reason TEXT
);
CREATE INDEX oversight_mode_requests_status_idx ON oversight_mode_requests (status, seq);
