ALTER TABLE llamadas DROP COLUMN amd_inicial;
