-- Run once by the postgres image on an empty volume: the MLflow tracking server's own database,
-- beside the product's (POSTGRES_DB), owned by the same user.
CREATE DATABASE mlflow OWNER modelyard;
