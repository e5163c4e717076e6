-- Kept in step with migrations/mysql (same version): the campaign's calling rules as JSON, and
-- one row per attempt handed to FreeSWITCH for the caps per rolling 24 h.
ALTER TABLE bases ADD COLUMN reglas TEXT NULL;
CREATE TABLE intentos_telefono (
    id INTEGER PRIMARY KEY,
    telefono TEXT NOT NULL,
    campana TEXT NOT NULL,
    uuid TEXT NOT NULL,
    momento TEXT NOT NULL
);
CREATE INDEX `intentos_telefono#telefono` ON intentos_telefono (telefono, momento);
CREATE INDEX `intentos_telefono#uuid` ON intentos_telefono (uuid);
CREATE INDEX `intentos_telefono#momento` ON intentos_telefono (momento);
