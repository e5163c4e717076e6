DROP INDEX `llamadas#uuid`;
CREATE INDEX `llamadas#uuid` ON llamadas (uuid);
