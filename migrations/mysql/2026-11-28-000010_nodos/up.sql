-- FreeSWITCH nodes an operator drained (no new calls): every discador process sharing this
-- database reads it, so a drain holds for all of them. A node without a row is not drained.
CREATE TABLE nodos (
    nombre VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    drenado BOOL NOT NULL,
    cambiado DATETIME(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
