-- Full-text search (docs/search.md): one FTS5 row per copy, keyed by the copy's `seq`, over
-- its subject, its people (sender's address and name, To, Cc; never Bcc) and the first
-- 100,000 characters of its text body. Contentless: the text is in `messages` and
-- `mail_contents` already, so the index holds only the words; `contentless_delete` lets a row
-- be removed by its rowid. `unicode61` without accent folding cuts words as PostgreSQL's
-- index does, so a query finds the same mail on both backends.
CREATE VIRTUAL TABLE message_search USING fts5(
    subject, people, body,
    content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0'
);

-- What is indexed for each copy, written once: every trigger below reads it.
CREATE VIEW message_search_source AS
SELECT m.seq AS seq, m.content_id AS content_id, m.subject AS subject,
       m.from_addr || ' ' || COALESCE(m.from_name, '') || ' ' || m.to_addrs || ' ' || m.cc_addrs AS people,
       substr(c.text, 1, 100000) AS body
FROM messages m JOIN mail_contents c ON c.id = m.content_id;

-- Triggers keep the index in step with every write path, present and future, in the writing
-- transaction: a mail is searchable exactly when it is visible. (An AFTER trigger sees the
-- row as written, so the view gives the new values.)
CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_search (rowid, subject, people, body)
    SELECT seq, subject, people, body FROM message_search_source WHERE seq = NEW.seq;
END;

CREATE TRIGGER message_search_update
AFTER UPDATE OF subject, from_addr, from_name, to_addrs, cc_addrs, content_id ON messages BEGIN
    DELETE FROM message_search WHERE rowid = OLD.seq;
    INSERT INTO message_search (rowid, subject, people, body)
    SELECT seq, subject, people, body FROM message_search_source WHERE seq = NEW.seq;
END;

CREATE TRIGGER message_search_body AFTER UPDATE OF text ON mail_contents BEGIN
    DELETE FROM message_search WHERE rowid IN (SELECT seq FROM messages WHERE content_id = NEW.id);
    INSERT INTO message_search (rowid, subject, people, body)
    SELECT seq, subject, people, body FROM message_search_source WHERE content_id = NEW.id;
END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
    DELETE FROM message_search WHERE rowid = OLD.seq;
END;

-- Mail stored before this migration.
INSERT INTO message_search (rowid, subject, people, body)
SELECT seq, subject, people, body FROM message_search_source;
