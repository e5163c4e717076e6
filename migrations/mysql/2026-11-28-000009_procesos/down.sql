ALTER TABLE bases DROP COLUMN proceso;
DROP TABLE procesos;
