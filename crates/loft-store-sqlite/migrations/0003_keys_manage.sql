-- Key management became a scope (`keys:manage`), held by default by every identity and so by
-- its primary key. Identities created before it existed managed their keys without it: give
-- it to them (and to their primary keys' stored scopes) so that nothing they could do stops
-- working. Extra keys do not get it; they must be minted with it by name.
UPDATE identities
SET scopes = json_insert(scopes, '$[#]', 'keys:manage')
WHERE NOT EXISTS (SELECT 1 FROM json_each(identities.scopes) WHERE value = 'keys:manage');

UPDATE api_keys
SET scopes = json_insert(scopes, '$[#]', 'keys:manage')
WHERE kind = 'primary'
  AND NOT EXISTS (SELECT 1 FROM json_each(api_keys.scopes) WHERE value = 'keys:manage');
