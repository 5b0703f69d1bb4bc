-- Per-identity oversight settings beside first contact (loft_core::caps::IdentityCaps): the
-- exfiltration guard (on unless the operator turns it off) and whether mail between the
-- identity and others of this server passes its mode's gate (gated unless exempted).
ALTER TABLE identities ADD COLUMN exfiltration_guard TEXT NOT NULL DEFAULT 'on'
    CHECK (exfiltration_guard IN ('on', 'off'));
ALTER TABLE identities ADD COLUMN internal_mail TEXT NOT NULL DEFAULT 'gated'
    CHECK (internal_mail IN ('gated', 'exempt'));
