-- Mail received by SMTP lists its attachments (name, content type, size, inline) on every
-- copy: a JSON array, empty for mail composed here. The bytes stay in mail_raw.
ALTER TABLE mail_contents ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
