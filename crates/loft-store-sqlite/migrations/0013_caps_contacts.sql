-- Sending controls: caps per identity and for the instance, first-contact gating, and the
-- contacts (addresses each identity exchanged mail with) they are counted from.

-- Caps per identity (NULL: no cap) and what happens to mail to a new address.
ALTER TABLE identities ADD COLUMN cap_mails_per_hour INTEGER;
ALTER TABLE identities ADD COLUMN cap_mails_per_day INTEGER;
ALTER TABLE identities ADD COLUMN cap_new_recipients_per_day INTEGER;
ALTER TABLE identities ADD COLUMN first_contact TEXT NOT NULL DEFAULT 'allow'
    CHECK (first_contact IN ('allow', 'hold'));

-- Caps of the whole instance, next to its freeze flag.
ALTER TABLE instance_state ADD COLUMN cap_mails_per_hour INTEGER;
ALTER TABLE instance_state ADD COLUMN cap_mails_per_day INTEGER;
ALTER TABLE instance_state ADD COLUMN cap_new_recipients_per_day INTEGER;

-- The mail caps count sender copies composed in the last hour or day: these partial indexes
-- hold only sender copies, by composition time, so a count reads the window's entries and
-- nothing else (at most about the cap's worth, since mail over a cap is never written),
-- however large the mailbox.
CREATE INDEX messages_sent_by_owner_time ON messages (owner_id, created_at) WHERE folder = 'sent';
CREATE INDEX messages_sent_by_time ON messages (created_at) WHERE folder = 'sent';

-- One row per (identity, address) it exchanged mail with, written in the transaction of the
-- mail it comes from: `first_sent_at` when the identity's mail to it went out (a held mail at
-- its approval), `first_received_at` when mail from it arrived.
CREATE TABLE contacts (
    identity_id       TEXT    NOT NULL REFERENCES identities (id),
    address           TEXT    NOT NULL,
    first_sent_at     INTEGER,
    first_received_at INTEGER,
    last_at           INTEGER NOT NULL,
    PRIMARY KEY (identity_id, address)
) WITHOUT ROWID;
-- The new-recipients caps count rows first written to in the last 24 hours, per identity and
-- for the instance.
CREATE INDEX contacts_first_sent ON contacts (identity_id, first_sent_at) WHERE first_sent_at IS NOT NULL;
CREATE INDEX contacts_first_sent_time ON contacts (first_sent_at) WHERE first_sent_at IS NOT NULL;

-- What the existing mail says: every recipient of a sender copy that went out (`sent` and not
-- waiting or canceled as a scheduled send; a held one counts from its approval, a scheduled
-- one from its release: its send_at, or its approval if that came later), and the sender of
-- every received copy.
INSERT INTO contacts (identity_id, address, first_sent_at, first_received_at, last_at)
SELECT identity_id, address, MIN(sent_at), MIN(received_at), MAX(at)
FROM (
    SELECT m.owner_id AS identity_id, r.value AS address,
           CASE WHEN m.send_at IS NULL THEN COALESCE(a.decided_at, m.created_at)
                WHEN a.decided_at IS NULL OR a.decided_at < m.send_at THEN m.send_at
                ELSE a.decided_at END AS sent_at,
           NULL AS received_at,
           CASE WHEN m.send_at IS NULL THEN COALESCE(a.decided_at, m.created_at)
                WHEN a.decided_at IS NULL OR a.decided_at < m.send_at THEN m.send_at
                ELSE a.decided_at END AS at
    FROM messages m
    LEFT JOIN approvals a ON a.message_id = m.id
    JOIN json_each(m.to_addrs) r
    WHERE m.folder = 'sent' AND m.status = 'sent' AND m.schedule_state IS NULL
    UNION ALL
    SELECT m.owner_id, r.value,
           CASE WHEN m.send_at IS NULL THEN COALESCE(a.decided_at, m.created_at)
                WHEN a.decided_at IS NULL OR a.decided_at < m.send_at THEN m.send_at
                ELSE a.decided_at END,
           NULL,
           CASE WHEN m.send_at IS NULL THEN COALESCE(a.decided_at, m.created_at)
                WHEN a.decided_at IS NULL OR a.decided_at < m.send_at THEN m.send_at
                ELSE a.decided_at END
    FROM messages m
    LEFT JOIN approvals a ON a.message_id = m.id
    JOIN json_each(m.cc_addrs) r
    WHERE m.folder = 'sent' AND m.status = 'sent' AND m.schedule_state IS NULL
    UNION ALL
    SELECT m.owner_id, r.value,
           CASE WHEN m.send_at IS NULL THEN COALESCE(a.decided_at, m.created_at)
                WHEN a.decided_at IS NULL OR a.decided_at < m.send_at THEN m.send_at
                ELSE a.decided_at END,
           NULL,
           CASE WHEN m.send_at IS NULL THEN COALESCE(a.decided_at, m.created_at)
                WHEN a.decided_at IS NULL OR a.decided_at < m.send_at THEN m.send_at
                ELSE a.decided_at END
    FROM messages m
    LEFT JOIN approvals a ON a.message_id = m.id
    JOIN json_each(m.bcc_addrs) r
    WHERE m.folder = 'sent' AND m.status = 'sent' AND m.schedule_state IS NULL
    UNION ALL
    SELECT m.owner_id, m.from_addr, NULL, m.created_at, m.created_at
    FROM messages m
    WHERE m.folder = 'inbox'
)
GROUP BY identity_id, address;
