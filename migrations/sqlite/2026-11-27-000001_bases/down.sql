DROP TABLE bases;
