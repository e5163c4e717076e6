-- FreeSWITCH nodes an operator drained (no new calls): every discador process sharing this
-- database reads it, so a drain holds for all of them. A node without a row is not drained.
-- Kept in step with migrations/mysql.
CREATE TABLE nodos (
    nombre TEXT NOT NULL PRIMARY KEY,
    drenado BOOLEAN NOT NULL,
    cambiado TEXT
) WITHOUT ROWID;
