//! crm-server's API on SQLite and PostgreSQL: one test binary, so the
//! workspace links it once. (`browser`, `process` and `ui` stay binaries of
//! their own.)

#[macro_use]
mod common;

mod batch;
mod csv_export;
mod customers;
mod modules;
mod openapi;
mod ops;
mod patch;
mod readers;
mod seed;
mod transfer;
mod webhooks;
