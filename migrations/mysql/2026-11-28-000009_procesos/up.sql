-- Several discador processes on one database: one row per live process (its heartbeat, stamped
-- with the database's clock, and what it publishes to its peers: its demand per CPS scope and its
-- campaigns' live figures, as JSON), and the owner of each campaign's lease.
CREATE TABLE procesos (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    host VARCHAR(255) NOT NULL,
    pid BIGINT NOT NULL,
    api VARCHAR(64) NOT NULL,
    socket VARCHAR(64) NOT NULL,
    inicio DATETIME(3) NOT NULL,
    latido DATETIME(3) NOT NULL,
    demanda TEXT NULL,
    KEY idx_procesos_latido (latido)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
ALTER TABLE bases ADD COLUMN proceso VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL;
