-- Listing a folder (the inbox, newest first) read and sorted the owner's whole mailbox
-- without this index; with it, a page is an index range scan.
CREATE INDEX messages_owner_folder_seq_idx ON messages (owner_id, folder, seq);
