//! Deterministic demo data.

use crate::db::Db;

/// Fill `db` with `contacts` contacts and related records.
pub async fn seed(_db: &Db, _contacts: u32) -> Result<(), sqlx::Error> {
    Ok(())
}
