-- Numbers never to be called (normalized form), checked right before every originate.
CREATE TABLE dnc (
    telefono VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    creado DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
