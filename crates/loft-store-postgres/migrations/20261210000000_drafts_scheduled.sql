-- Drafts: mail an identity is still composing (loft_core::drafts). Recipients are kept as
-- written (JSON arrays of strings): a draft need not be valid until it is sent. Sending one
-- deletes it in the send's transaction.
CREATE TABLE drafts (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT   NOT NULL UNIQUE,
    owner_id   TEXT   NOT NULL REFERENCES identities (id),
    to_addrs   TEXT   NOT NULL,
    cc_addrs   TEXT   NOT NULL,
    bcc_addrs  TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    body_text  TEXT   NOT NULL,
    body_html  TEXT,
    -- The message (in the owner's mailbox) the draft answers.
    reply_to   TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX drafts_owner_idx ON drafts (owner_id, seq);

-- Scheduled send (loft_core::schedule). `send_at` is when the sender asked the mail to go
-- out. While it waits, `schedule_state` is 'scheduled' and `schedule_job` names the job that
-- releases it; a cancel sets 'canceled'; the release clears both (the copy is then plainly
-- `status`, 'sent'). Readers show `COALESCE(schedule_state, status)` as the status, as on
-- SQLite, whose status CHECK cannot be widened in place.
ALTER TABLE messages ADD COLUMN send_at BIGINT;
ALTER TABLE messages ADD COLUMN schedule_state TEXT CHECK (schedule_state IN ('scheduled', 'canceled'));
ALTER TABLE messages ADD COLUMN schedule_job BIGINT;
