-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- POSTGRES_DB already created ticketing_accounts; each service gets a database of its own.
CREATE DATABASE ticketing_concerts;
CREATE DATABASE ticketing_payments;
