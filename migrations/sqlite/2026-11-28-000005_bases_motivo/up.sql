-- Kept in step with migrations/mysql. Why the service itself paused a campaign; NULL otherwise.
ALTER TABLE bases ADD COLUMN motivo TEXT NULL;
