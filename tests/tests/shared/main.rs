//! The Shared database mode against a real PostgreSQL server: the SQL layer
//! directly, and the real controller against the API double with the test
//! command's server registered as a shared server.
//!
//! These tests need `CRM_TEST_POSTGRES_URL` (a superuser URL), which
//! `scripts/with-postgres` exports; without it they fail, saying so.

mod harness;
mod operator;
mod sql_layer;
