-- A mailbox's labels by owner (docs/benchmarks.md, "Data scale"): a list filtered by a label
-- walks `(owner_id, label, message_seq)` instead of testing every copy of the mailbox for the
-- label, and the labels quota counts the distinct labels one index seek each. The owner is the
-- copy's, written with each label.
ALTER TABLE message_labels ADD COLUMN owner_id TEXT;
UPDATE message_labels l SET owner_id = m.owner_id FROM messages m WHERE m.seq = l.message_seq;
ALTER TABLE message_labels ALTER COLUMN owner_id SET NOT NULL;
DROP INDEX message_labels_label_idx;
CREATE INDEX message_labels_owner_label_idx ON message_labels (owner_id, label, message_seq);
-- So that the first lists are planned knowing the new column.
ANALYZE message_labels;
