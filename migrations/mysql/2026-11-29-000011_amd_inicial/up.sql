-- A HUMAN (or NOTSURE) verdict corrected by a voicemail beep heard later, while the person's
-- message played: `amd_resultado` is then MACHINE with `amd_causa` LATE_BEEP, and this column
-- keeps the first verdict (HUMAN or NOTSURE). NULL for every call whose verdict stood.
ALTER TABLE llamadas ADD COLUMN amd_inicial VARCHAR(16) NULL;
