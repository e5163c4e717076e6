-- One row per campaign: its settings, its state and the name of its numbers table.
-- `nombre` and `tabla` use a binary collation: they are identifiers, and MySQL table names are
-- case-sensitive on Linux, so "Prueba" and "PRUEBA" are two different campaigns and tables.
CREATE TABLE bases (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    nombre VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tabla VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    cps DOUBLE NOT NULL,
    max_canales INT NOT NULL,
    reintentos INT NOT NULL,
    intervalo_reintento INT NOT NULL,
    amd VARCHAR(16) NOT NULL,
    amd_incierto VARCHAR(16) NOT NULL,
    destino_humano VARCHAR(64) NOT NULL,
    destino_maquina VARCHAR(64) NOT NULL,
    caller_id VARCHAR(32) NULL,
    gateway VARCHAR(64) NULL,
    timeout_llamada INT NOT NULL,
    hora_inicio TIME NOT NULL,
    hora_fin TIME NOT NULL,
    dias VARCHAR(32) NOT NULL,
    zona_horaria VARCHAR(64) NOT NULL,
    estado VARCHAR(12) NOT NULL,
    creada DATETIME(3) NOT NULL,
    actualizada DATETIME(3) NOT NULL,
    UNIQUE KEY uq_bases_nombre (nombre),
    UNIQUE KEY uq_bases_tabla (tabla)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
