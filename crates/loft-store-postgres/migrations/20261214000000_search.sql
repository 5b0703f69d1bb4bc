-- Full-text search (docs/search.md): a `tsvector` per stored message (shared by its copies),
-- over its subject (weight A), its people (sender's address and name, To, Cc; weight B;
-- never Bcc) and the first 100,000 characters of its text body (weight D), under a GIN index.
--
-- Words are cut as SQLite's FTS5 `unicode61` cuts them, so a query finds the same mail on
-- both backends: the `simple` configuration (lowercase, no stemming, no stop words), over text
-- whose punctuation that would make PostgreSQL's parser keep compound tokens (an address, a
-- host name, a hyphenated word, a path, a tag) is turned into spaces first.
CREATE FUNCTION loft_search_words(t TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN translate(t, '@.-/:+_<>&;=?#%~\', '                ');

CREATE FUNCTION loft_search_vector(
    subject TEXT, from_addr TEXT, from_name TEXT, to_addrs TEXT, cc_addrs TEXT, body TEXT
) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN setweight(to_tsvector('simple'::regconfig, loft_search_words(subject)), 'A')
        || setweight(to_tsvector('simple'::regconfig, loft_search_words(
               from_addr || ' ' || COALESCE(from_name, '') || ' ' || to_addrs || ' ' || cc_addrs)), 'B')
        || setweight(to_tsvector('simple'::regconfig, loft_search_words(left(body, 100000))), 'D');

ALTER TABLE mail_contents ADD COLUMN search tsvector;
UPDATE mail_contents SET search = loft_search_vector(subject, from_addr, from_name, to_addrs, cc_addrs, body_text);
ALTER TABLE mail_contents ALTER COLUMN search SET NOT NULL;

-- Every write path, present and future, keeps the vector in step, in the writing transaction.
CREATE FUNCTION loft_mail_contents_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search := loft_search_vector(NEW.subject, NEW.from_addr, NEW.from_name, NEW.to_addrs, NEW.cc_addrs,
                                     NEW.body_text);
    RETURN NEW;
END
$$;
CREATE TRIGGER mail_contents_search BEFORE INSERT OR UPDATE OF subject, from_addr, from_name, to_addrs, cc_addrs,
    body_text ON mail_contents FOR EACH ROW EXECUTE FUNCTION loft_mail_contents_search();

CREATE INDEX mail_contents_search_idx ON mail_contents USING gin (search);
