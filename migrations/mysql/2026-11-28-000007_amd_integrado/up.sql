-- Per-campaign parameters of the integrated answering-machine detector (`amd: integrado`): JSON of
-- the nine parameters (`AmdParamsJson`, every field given); NULL: the detector's defaults, which is
-- what existing campaigns keep.
ALTER TABLE bases ADD COLUMN amd_integrado TEXT NULL;
