-- One database per service process of deploy/compose.yml (the services own their schemas).
CREATE DATABASE catalogue;
CREATE DATABASE reporting;
CREATE DATABASE intake_jizzakh;
CREATE DATABASE notifications_jizzakh;
CREATE DATABASE reporting_jizzakh;
CREATE DATABASE intake_namangan;
CREATE DATABASE notifications_namangan;
CREATE DATABASE reporting_namangan;
CREATE DATABASE intake_fergana;
CREATE DATABASE notifications_fergana;
CREATE DATABASE reporting_fergana;
