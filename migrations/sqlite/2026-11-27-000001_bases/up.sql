-- One row per campaign: its settings, its state and the name of its numbers table.
-- Kept in step with migrations/mysql (same versions, same columns).
-- `nombre` compares exactly (BINARY), like MySQL's ascii_bin. `tabla` is unique COLLATE NOCASE:
-- SQLite table names are case-insensitive, so "Prueba" and "PRUEBA" would be one table.
-- Times are text 'YYYY-MM-DD HH:MM:SS[.mmm]' in UTC (diesel's chrono encoding).
CREATE TABLE bases (
    id INTEGER PRIMARY KEY,
    nombre TEXT NOT NULL UNIQUE,
    tabla TEXT NOT NULL COLLATE NOCASE UNIQUE,
    cps REAL NOT NULL,
    max_canales INTEGER NOT NULL,
    reintentos INTEGER NOT NULL,
    intervalo_reintento INTEGER NOT NULL,
    amd TEXT NOT NULL,
    amd_incierto TEXT NOT NULL,
    destino_humano TEXT NOT NULL,
    destino_maquina TEXT NOT NULL,
    caller_id TEXT NULL,
    gateway TEXT NULL,
    timeout_llamada INTEGER NOT NULL,
    hora_inicio TEXT NOT NULL,
    hora_fin TEXT NOT NULL,
    dias TEXT NOT NULL,
    zona_horaria TEXT NOT NULL,
    estado TEXT NOT NULL,
    creada TEXT NOT NULL,
    actualizada TEXT NOT NULL
);
