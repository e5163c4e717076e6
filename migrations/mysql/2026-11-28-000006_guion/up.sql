-- The campaign's call script (messages, key menu, voicemail, wait for an agent) and, per call, how
-- it ended (its disposition). Every new column is NULL or defaulted: existing campaigns keep their
-- behaviour (no script: verdict, then the campaign's destination) and existing CDRs stay valid.
-- The numbers tables get their own `disposicion` column from the service when it opens the
-- database (their names are only known at run time).
ALTER TABLE bases
    ADD COLUMN mensaje_humano VARCHAR(255) NULL,
    ADD COLUMN mensaje_maquina VARCHAR(255) NULL,
    ADD COLUMN mensaje_baja VARCHAR(255) NULL,
    ADD COLUMN mensaje_abandono VARCHAR(255) NULL,
    ADD COLUMN menu TEXT NULL,
    ADD COLUMN buzon VARCHAR(16) NOT NULL DEFAULT 'tras_beep',
    ADD COLUMN espera_agente_s INT NOT NULL DEFAULT 2;
-- The disposition counts of estado read one campaign's CDRs from this index alone (a covering
-- index: no row is read).
ALTER TABLE llamadas
    ADD COLUMN disposicion VARCHAR(24) NULL,
    ADD COLUMN mensaje_ms INT NULL,
    ADD COLUMN teclas VARCHAR(32) NULL,
    ADD COLUMN accion VARCHAR(16) NULL,
    ADD COLUMN transferida_a VARCHAR(255) NULL,
    ADD COLUMN agente_contesto BOOLEAN NULL,
    ADD COLUMN tras_beep_ms INT NULL,
    ADD INDEX idx_llamadas_disposiciones (campana, resultado, disposicion);
