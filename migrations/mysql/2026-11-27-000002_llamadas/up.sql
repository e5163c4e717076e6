-- Call detail records: one row per attempt, written when the call is over.
CREATE TABLE llamadas (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    campana VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    numero_id BIGINT NOT NULL,
    telefono VARCHAR(32) NOT NULL,
    intento INT NOT NULL,
    uuid CHAR(36) NOT NULL,
    nodo VARCHAR(64) NOT NULL,
    estado VARCHAR(12) NOT NULL,
    resultado VARCHAR(20) NOT NULL,
    causa VARCHAR(64) NULL,
    amd_resultado VARCHAR(32) NULL,
    amd_causa VARCHAR(64) NULL,
    inicio DATETIME(3) NOT NULL,
    contestada DATETIME(3) NULL,
    fin DATETIME(3) NOT NULL,
    billsec INT NOT NULL,
    duracion INT NOT NULL,
    KEY idx_llamadas_campana_inicio (campana, inicio),
    KEY idx_llamadas_uuid (uuid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
