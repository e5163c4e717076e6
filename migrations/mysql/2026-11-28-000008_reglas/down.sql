DROP TABLE intentos_telefono;
ALTER TABLE bases DROP COLUMN reglas;
