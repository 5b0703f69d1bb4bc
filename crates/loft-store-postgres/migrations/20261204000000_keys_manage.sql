-- Key management became a scope (`keys:manage`), held by default by every identity and so by
-- its primary key. Identities created before it existed managed their keys without it: give
-- it to them (and to their primary keys' stored scopes) so that nothing they could do stops
-- working. Extra keys do not get it; they must be minted with it by name.
UPDATE identities
SET scopes = (scopes::jsonb || '["keys:manage"]'::jsonb)::text
WHERE NOT (scopes::jsonb ? 'keys:manage');

UPDATE api_keys
SET scopes = (scopes::jsonb || '["keys:manage"]'::jsonb)::text
WHERE kind = 'primary' AND NOT (scopes::jsonb ? 'keys:manage');
