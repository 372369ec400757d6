//! The CrmTenant operator.
#![forbid(unsafe_code)]

pub mod model;
pub mod validate;
pub mod build;
