-- One CDR per attempt (an attempt's uuid is fresh per claim): the writer inserts CDRs "insert or
-- ignore" on this key, so a batch retried after its COMMIT went through but the acknowledgement was
-- lost (connection cut during COMMIT) does not write its calls twice. Duplicates written before this
-- migration are removed first, keeping the first row of each attempt.
DELETE l1 FROM llamadas l1 JOIN llamadas l2 ON l1.uuid = l2.uuid AND l1.id > l2.id;
ALTER TABLE llamadas DROP INDEX idx_llamadas_uuid, ADD UNIQUE INDEX uq_llamadas_uuid (uuid);
