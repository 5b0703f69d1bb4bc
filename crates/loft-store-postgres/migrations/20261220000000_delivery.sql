-- Outbound delivery (issue 10): the suppression list. An address a remote server refused for
-- good (a 5xx reply) is refused for every identity until the operator lifts it. Delivery
-- outcomes themselves live in messages.delivery (the sender copy's report).
CREATE TABLE suppressions (
    address     TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
