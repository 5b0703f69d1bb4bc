-- A mailbox's labels by owner (docs/benchmarks.md, "Data scale"): a list filtered by a label
-- walks `(owner_id, label, message_seq)` instead of testing every copy of the mailbox for the
-- label, and the labels quota counts the distinct labels one index seek each. The owner is the
-- copy's, written with each label.
ALTER TABLE message_labels ADD COLUMN owner_id TEXT NOT NULL DEFAULT '';
UPDATE message_labels SET owner_id = (SELECT m.owner_id FROM messages m WHERE m.seq = message_labels.message_seq);
DROP INDEX message_labels_label;
CREATE INDEX message_labels_owner_label ON message_labels (owner_id, label, message_seq);
