-- A draft's files (loft-core/src/drafts.rs): JSON text, a list of {filename, content_type,
-- base64}, written with the draft and sent with it.
ALTER TABLE drafts ADD COLUMN files TEXT NOT NULL DEFAULT '[]';
