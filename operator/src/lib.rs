//! The CrmTenant operator.
#![forbid(unsafe_code)]

pub mod build;
pub mod cli;
pub mod model;
pub mod validate;
