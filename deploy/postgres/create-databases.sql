-- Generated from deploy/regions/ by `oss deploy generate` (`oss region add` runs it): do not edit.
-- One database per service process of deploy/compose.yml, each owned by a role of its own that can
-- connect to nothing else (CONNECT revoked from PUBLIC); no service connects as the superuser.
-- Passwords come from the environment of the postgres container (psql \getenv, PostgreSQL 15+).
\getenv catalogue_password OSS_CATALOGUE_DB_PASSWORD
CREATE ROLE catalogue LOGIN PASSWORD :'catalogue_password';
CREATE DATABASE catalogue OWNER catalogue;
REVOKE ALL ON DATABASE catalogue FROM PUBLIC;
\getenv reporting_password OSS_REPORTING_DB_PASSWORD
CREATE ROLE reporting LOGIN PASSWORD :'reporting_password';
CREATE DATABASE reporting OWNER reporting;
REVOKE ALL ON DATABASE reporting FROM PUBLIC;
\getenv intake_fergana_password OSS_INTAKE_FERGANA_DB_PASSWORD
CREATE ROLE intake_fergana LOGIN PASSWORD :'intake_fergana_password';
CREATE DATABASE intake_fergana OWNER intake_fergana;
REVOKE ALL ON DATABASE intake_fergana FROM PUBLIC;
\getenv notifications_fergana_password OSS_NOTIFICATIONS_FERGANA_DB_PASSWORD
CREATE ROLE notifications_fergana LOGIN PASSWORD :'notifications_fergana_password';
CREATE DATABASE notifications_fergana OWNER notifications_fergana;
REVOKE ALL ON DATABASE notifications_fergana FROM PUBLIC;
\getenv reporting_fergana_password OSS_REPORTING_FERGANA_DB_PASSWORD
CREATE ROLE reporting_fergana LOGIN PASSWORD :'reporting_fergana_password';
CREATE DATABASE reporting_fergana OWNER reporting_fergana;
REVOKE ALL ON DATABASE reporting_fergana FROM PUBLIC;
\getenv intake_jizzakh_password OSS_INTAKE_JIZZAKH_DB_PASSWORD
CREATE ROLE intake_jizzakh LOGIN PASSWORD :'intake_jizzakh_password';
CREATE DATABASE intake_jizzakh OWNER intake_jizzakh;
REVOKE ALL ON DATABASE intake_jizzakh FROM PUBLIC;
\getenv notifications_jizzakh_password OSS_NOTIFICATIONS_JIZZAKH_DB_PASSWORD
CREATE ROLE notifications_jizzakh LOGIN PASSWORD :'notifications_jizzakh_password';
CREATE DATABASE notifications_jizzakh OWNER notifications_jizzakh;
REVOKE ALL ON DATABASE notifications_jizzakh FROM PUBLIC;
\getenv reporting_jizzakh_password OSS_REPORTING_JIZZAKH_DB_PASSWORD
CREATE ROLE reporting_jizzakh LOGIN PASSWORD :'reporting_jizzakh_password';
CREATE DATABASE reporting_jizzakh OWNER reporting_jizzakh;
REVOKE ALL ON DATABASE reporting_jizzakh FROM PUBLIC;
\getenv intake_namangan_password OSS_INTAKE_NAMANGAN_DB_PASSWORD
CREATE ROLE intake_namangan LOGIN PASSWORD :'intake_namangan_password';
CREATE DATABASE intake_namangan OWNER intake_namangan;
REVOKE ALL ON DATABASE intake_namangan FROM PUBLIC;
\getenv notifications_namangan_password OSS_NOTIFICATIONS_NAMANGAN_DB_PASSWORD
CREATE ROLE notifications_namangan LOGIN PASSWORD :'notifications_namangan_password';
CREATE DATABASE notifications_namangan OWNER notifications_namangan;
REVOKE ALL ON DATABASE notifications_namangan FROM PUBLIC;
\getenv reporting_namangan_password OSS_REPORTING_NAMANGAN_DB_PASSWORD
CREATE ROLE reporting_namangan LOGIN PASSWORD :'reporting_namangan_password';
CREATE DATABASE reporting_namangan OWNER reporting_namangan;
REVOKE ALL ON DATABASE reporting_namangan FROM PUBLIC;
