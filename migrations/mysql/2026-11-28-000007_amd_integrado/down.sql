ALTER TABLE bases DROP COLUMN amd_integrado;
