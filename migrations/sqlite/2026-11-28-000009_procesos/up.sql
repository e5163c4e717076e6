-- Kept in step with migrations/mysql (same version). SQLite serves one process only (the service
-- locks `<db>.lock`), but the tables are the same so that `discador copy` and the code are too.
-- Times are text from `strftime('%Y-%m-%d %H:%M:%f', 'now')`, compared as text.
CREATE TABLE procesos (
    id TEXT NOT NULL PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    api TEXT NOT NULL,
    socket TEXT NOT NULL,
    inicio TEXT NOT NULL,
    latido TEXT NOT NULL,
    demanda TEXT NULL
);
ALTER TABLE bases ADD COLUMN proceso TEXT NULL;
