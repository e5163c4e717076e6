-- One CDR per attempt: see migrations/mysql (same version). Kept in step.
DELETE FROM llamadas WHERE id NOT IN (SELECT MIN(id) FROM llamadas GROUP BY uuid);
DROP INDEX `llamadas#uuid`;
CREATE UNIQUE INDEX `llamadas#uuid` ON llamadas (uuid);
