-- Calling rules beside the hours: a campaign's excluded dates, its own cap on attempts per number
-- per rolling 24 h and its abandon-rate ceiling, as JSON (`CallingRules`); NULL: none, none and
-- 3 %, which is what existing campaigns get.
ALTER TABLE bases ADD COLUMN reglas TEXT NULL;
-- One row per attempt handed to FreeSWITCH, written when it is handed (before the call ends, so
-- two campaigns dialing the same number at once both see it): what the caps per rolling 24 h
-- count, across campaigns. An attempt that never left (given back, refused without a channel) is
-- deleted by the claim's `uuid`; rows older than 24 h are purged.
CREATE TABLE intentos_telefono (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    telefono VARCHAR(32) NOT NULL,
    campana VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    uuid CHAR(36) NOT NULL,
    momento DATETIME(3) NOT NULL,
    KEY idx_intentos_telefono (telefono, momento),
    KEY idx_intentos_uuid (uuid),
    KEY idx_intentos_momento (momento)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
