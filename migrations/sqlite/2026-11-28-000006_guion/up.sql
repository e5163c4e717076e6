-- Kept in step with migrations/mysql (same version): the campaign's call script and, per call,
-- its disposition. The numbers tables get `disposicion` from the service when it opens the file.
ALTER TABLE bases ADD COLUMN mensaje_humano TEXT NULL;
ALTER TABLE bases ADD COLUMN mensaje_maquina TEXT NULL;
ALTER TABLE bases ADD COLUMN mensaje_baja TEXT NULL;
ALTER TABLE bases ADD COLUMN mensaje_abandono TEXT NULL;
ALTER TABLE bases ADD COLUMN menu TEXT NULL;
ALTER TABLE bases ADD COLUMN buzon TEXT NOT NULL DEFAULT 'tras_beep';
ALTER TABLE bases ADD COLUMN espera_agente_s INTEGER NOT NULL DEFAULT 2;
ALTER TABLE llamadas ADD COLUMN disposicion TEXT NULL;
ALTER TABLE llamadas ADD COLUMN mensaje_ms INTEGER NULL;
ALTER TABLE llamadas ADD COLUMN teclas TEXT NULL;
ALTER TABLE llamadas ADD COLUMN accion TEXT NULL;
ALTER TABLE llamadas ADD COLUMN transferida_a TEXT NULL;
ALTER TABLE llamadas ADD COLUMN agente_contesto INTEGER NULL;
ALTER TABLE llamadas ADD COLUMN tras_beep_ms INTEGER NULL;
-- Covering index for the disposition counts of estado.
CREATE INDEX `llamadas#disposiciones` ON llamadas (campana, resultado, disposicion);
