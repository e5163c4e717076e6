-- Kept in step with migrations/mysql (same version): the first AMD verdict of a call whose
-- HUMAN / NOTSURE verdict a late voicemail beep corrected to MACHINE; NULL otherwise.
ALTER TABLE llamadas ADD COLUMN amd_inicial TEXT NULL;
