DROP TABLE nodos;
