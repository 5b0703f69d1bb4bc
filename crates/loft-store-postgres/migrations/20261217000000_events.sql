-- Events (loft_core::events). A writer leaves a change's events, as JSON, on the audit row it
-- inserts into `audit_pending`; the sealer, when it chains that row, numbers them and moves
-- them here, then NOTIFYs `loft_events`. Numbers are given under the sealer's lock and
-- committed in order, so a reader resuming after event n never misses one.
ALTER TABLE audit_pending ADD COLUMN events TEXT;

CREATE TABLE events (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    identity_id TEXT,
    audit_seq   BIGINT,
    payload     TEXT   NOT NULL
);
CREATE INDEX events_by_identity ON events (identity_id, seq);
