-- Numbers never to be called (normalized form), checked right before every originate.
-- Kept in step with migrations/mysql.
CREATE TABLE dnc (
    telefono TEXT NOT NULL PRIMARY KEY,
    creado TEXT NOT NULL
) WITHOUT ROWID;
