//! Database credentials and, per mode, what "the database is ready" means.

pub mod credentials;
pub mod error;
pub mod provision;
pub mod scram;
pub mod shared;
pub mod sql;
