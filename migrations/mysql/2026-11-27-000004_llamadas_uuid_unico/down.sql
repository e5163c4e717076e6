ALTER TABLE llamadas DROP INDEX uq_llamadas_uuid, ADD INDEX idx_llamadas_uuid (uuid);
