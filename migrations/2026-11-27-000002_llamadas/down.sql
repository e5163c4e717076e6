DROP TABLE llamadas;
