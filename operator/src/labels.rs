//! Labels every child carries, and the field manager.

/// The one field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "crm-operator";
