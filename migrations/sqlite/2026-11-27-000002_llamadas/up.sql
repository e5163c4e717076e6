-- Call detail records: one row per attempt, written when the call is over.
-- Kept in step with migrations/mysql.
CREATE TABLE llamadas (
    id INTEGER PRIMARY KEY,
    campana TEXT NOT NULL,
    numero_id INTEGER NOT NULL,
    telefono TEXT NOT NULL,
    intento INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    nodo TEXT NOT NULL,
    estado TEXT NOT NULL,
    resultado TEXT NOT NULL,
    causa TEXT NULL,
    amd_resultado TEXT NULL,
    amd_causa TEXT NULL,
    inicio TEXT NOT NULL,
    contestada TEXT NULL,
    fin TEXT NOT NULL,
    billsec INTEGER NOT NULL,
    duracion INTEGER NOT NULL
);
-- Index names share SQLite's table namespace: '#' keeps them apart from any campaign's table name.
CREATE INDEX `llamadas#campana_inicio` ON llamadas (campana, inicio);
CREATE INDEX `llamadas#uuid` ON llamadas (uuid);
