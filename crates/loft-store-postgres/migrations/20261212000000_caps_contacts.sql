-- Sending controls: caps per identity and for the instance, first-contact gating, and the
-- contacts (addresses each identity exchanged mail with) they are counted from.

-- Caps per identity (NULL: no cap) and what happens to mail to a new address.
ALTER TABLE identities ADD COLUMN cap_mails_per_hour BIGINT;
ALTER TABLE identities ADD COLUMN cap_mails_per_day BIGINT;
ALTER TABLE identities ADD COLUMN cap_new_recipients_per_day BIGINT;
ALTER TABLE identities ADD COLUMN first_contact TEXT NOT NULL DEFAULT 'allow'
    CHECK (first_contact IN ('allow', 'hold'));

-- Caps of the whole instance, next to its freeze flag.
ALTER TABLE instance_state ADD COLUMN cap_mails_per_hour BIGINT;
ALTER TABLE instance_state ADD COLUMN cap_mails_per_day BIGINT;
ALTER TABLE instance_state ADD COLUMN cap_new_recipients_per_day BIGINT;

-- The mail caps count sender copies composed in the last hour or day. A copy's time is on its
-- shared `mail_contents` row, which no index can join to its owner, so sender copies carry
-- it themselves (`composed_at`, NULL on recipient copies); the partial indexes hold only
-- sender copies, by that time, so a count reads the window's entries and nothing else (at
-- most about the cap's worth, since mail over a cap is never written), however large the
-- mailbox.
ALTER TABLE messages ADD COLUMN composed_at BIGINT;
UPDATE messages m SET composed_at = c.created_at
FROM mail_contents c WHERE c.id = m.content_id AND m.folder = 'sent';
CREATE INDEX messages_composed_by_owner_idx ON messages (owner_id, composed_at) WHERE composed_at IS NOT NULL;
CREATE INDEX messages_composed_idx ON messages (composed_at) WHERE composed_at IS NOT NULL;

-- One row per (identity, address) it exchanged mail with, written in the transaction of the
-- mail it comes from: `first_sent_at` when the identity's mail to it went out (a held mail at
-- its approval), `first_received_at` when mail from it arrived. Writers upsert their rows last
-- in their transaction and sorted by (identity_id, address), so two sends cannot deadlock on
-- them.
CREATE TABLE contacts (
    identity_id       TEXT   NOT NULL REFERENCES identities (id),
    address           TEXT   NOT NULL,
    first_sent_at     BIGINT,
    first_received_at BIGINT,
    last_at           BIGINT NOT NULL,
    PRIMARY KEY (identity_id, address)
);
-- The new-recipients caps count rows first written to in the last 24 hours, per identity and
-- for the instance.
CREATE INDEX contacts_first_sent_idx ON contacts (identity_id, first_sent_at) WHERE first_sent_at IS NOT NULL;
CREATE INDEX contacts_first_sent_time_idx ON contacts (first_sent_at) WHERE first_sent_at IS NOT NULL;

-- What the existing mail says: every recipient of a sender copy that went out (`sent` and not
-- waiting or canceled as a scheduled send; a held one counts from its approval, a scheduled
-- one from its release: its send_at, or its approval if that came later; GREATEST ignores
-- NULLs), and the sender of every received copy.
INSERT INTO contacts (identity_id, address, first_sent_at, first_received_at, last_at)
SELECT identity_id, address, MIN(sent_at), MIN(received_at), MAX(at)
FROM (
    SELECT m.owner_id AS identity_id, r.address,
           COALESCE(GREATEST(m.send_at, a.decided_at), c.created_at) AS sent_at, NULL::BIGINT AS received_at,
           COALESCE(GREATEST(m.send_at, a.decided_at), c.created_at) AS at
    FROM messages m
    JOIN mail_contents c ON c.id = m.content_id
    LEFT JOIN approvals a ON a.message_id = m.id
    CROSS JOIN LATERAL (
        SELECT jsonb_array_elements_text(c.to_addrs::jsonb)
        UNION ALL SELECT jsonb_array_elements_text(c.cc_addrs::jsonb)
        UNION ALL SELECT jsonb_array_elements_text(m.bcc_addrs::jsonb)
    ) AS r (address)
    WHERE m.folder = 'sent' AND m.status = 'sent' AND m.schedule_state IS NULL
    UNION ALL
    SELECT m.owner_id, c.from_addr, NULL, c.created_at, c.created_at
    FROM messages m
    JOIN mail_contents c ON c.id = m.content_id
    WHERE m.folder = 'inbox'
) AS exchanged
GROUP BY identity_id, address;
