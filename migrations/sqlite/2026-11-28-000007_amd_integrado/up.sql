-- Kept in step with migrations/mysql (same version): the integrated detector's parameters as JSON;
-- NULL: the defaults.
ALTER TABLE bases ADD COLUMN amd_integrado TEXT NULL;
