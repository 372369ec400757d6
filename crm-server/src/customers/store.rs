//! Storage of companies and contacts. Each function takes a connection, so
//! a transaction can span several (batch upserts, merges, imports); the
//! read cache belongs to the handlers. Each write queues its webhook event
//! in the same transaction (a savepoint when the caller has one open).

use serde_json::json;
use sqlx::{Acquire, AnyConnection};

use super::{Company, CompanyInput, CompanyParams, Contact, ContactInput, ContactParams, search};
use crate::db::{DbKind, Sql, now, rows};
use crate::error::{ApiResult, db_error};
use crate::http::Page;
use crate::pagination::Lister;
use crate::store::{date_range, delete_row, fk_field, one, stale_or_missing, versioned};
use crate::webhooks::Event;
use crate::webhooks::outbox::record;

/// The company with this id, or 404.
pub async fn get_company(conn: &mut AnyConnection, id: i64) -> ApiResult<Company> {
    let mut sql = Sql::new("SELECT * FROM companies WHERE id = ");
    sql.bind(id);
    one(sql.fetch_optional(conn).await?)
}

/// Insert a company.
pub async fn insert_company(conn: &mut AnyConnection, b: CompanyInput) -> ApiResult<Company> {
    let ts = now();
    let mut sql =
        Sql::new("INSERT INTO companies (name, domain, industry, created_at, updated_at) VALUES (");
    sql.bind(String::from(b.name))
        .push(", ")
        .bind(b.domain.map(String::from));
    sql.push(", ")
        .bind(b.industry.map(String::from))
        .push(", ")
        .bind(ts.clone());
    sql.push(", ").bind(ts).push(") RETURNING *");
    let mut tx = conn.begin().await?;
    let row = sql
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db_error(e, "name"))?;
    let c: Company = one(row)?;
    record(&mut tx, Event::CompanyCreated, &c).await?;
    tx.commit().await?;
    Ok(c)
}

/// Replace a company's fields if its version is `expected` (any when
/// None): 412 when it is not, 404 when there is no such company.
pub async fn update_company(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
    b: CompanyInput,
) -> ApiResult<Company> {
    let mut sql = Sql::new("UPDATE companies SET name = ");
    sql.bind(String::from(b.name))
        .push(", domain = ")
        .bind(b.domain.map(String::from));
    sql.push(", industry = ").bind(b.industry.map(String::from));
    sql.push(", updated_at = ")
        .bind(now())
        .push(", version = version + 1 WHERE id = ")
        .bind(id);
    versioned(&mut sql, expected);
    let mut tx = conn.begin().await?;
    let row = sql
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db_error(e, "name"))?;
    let c: Company = stale_or_missing(&mut tx, "companies", id, row).await?;
    record(&mut tx, Event::CompanyUpdated, &c).await?;
    tx.commit().await?;
    Ok(c)
}

/// Delete a company (its contacts are unlinked by the database).
pub async fn delete_company(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
) -> ApiResult<()> {
    let delete = "DELETE FROM companies WHERE id = ";
    let mut tx = conn.begin().await?;
    delete_row(&mut tx, delete, "companies", id, expected).await?;
    record(&mut tx, Event::CompanyDeleted, &json!({"id": id})).await?;
    tx.commit().await?;
    Ok(())
}

/// The contact with this id, or 404.
pub async fn get_contact(conn: &mut AnyConnection, id: i64) -> ApiResult<Contact> {
    let mut sql = Sql::new("SELECT * FROM contacts WHERE id = ");
    sql.bind(id);
    one(sql.fetch_optional(conn).await?)
}

/// Insert a contact.
pub async fn insert_contact(conn: &mut AnyConnection, b: ContactInput) -> ApiResult<Contact> {
    let ts = now();
    let mut sql = Sql::new(
        "INSERT INTO contacts (first_name, last_name, email, phone, company_id, created_at, updated_at) VALUES (",
    );
    sql.bind(String::from(b.first_name))
        .push(", ")
        .bind(String::from(b.last_name));
    sql.push(", ")
        .bind(String::from(b.email))
        .push(", ")
        .bind(b.phone.map(String::from));
    sql.push(", ")
        .bind(b.company_id)
        .push(", ")
        .bind(ts.clone())
        .push(", ")
        .bind(ts);
    sql.push(") RETURNING *");
    let mut tx = conn.begin().await?;
    let row = sql
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| fk_field(db_error(e, "email"), "company_id"))?;
    let c: Contact = one(row)?;
    record(&mut tx, Event::ContactCreated, &c).await?;
    tx.commit().await?;
    Ok(c)
}

/// Replace a contact's fields if its version is `expected` (any when
/// None): 412 when it is not, 404 when there is no such contact.
pub async fn update_contact(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
    b: ContactInput,
) -> ApiResult<Contact> {
    let mut sql = Sql::new("UPDATE contacts SET first_name = ");
    sql.bind(String::from(b.first_name))
        .push(", last_name = ")
        .bind(String::from(b.last_name));
    sql.push(", email = ").bind(String::from(b.email));
    sql.push(", phone = ").bind(b.phone.map(String::from));
    sql.push(", company_id = ").bind(b.company_id);
    sql.push(", updated_at = ")
        .bind(now())
        .push(", version = version + 1 WHERE id = ")
        .bind(id);
    versioned(&mut sql, expected);
    let mut tx = conn.begin().await?;
    let row = sql
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| fk_field(db_error(e, "email"), "company_id"))?;
    let c: Contact = stale_or_missing(&mut tx, "contacts", id, row).await?;
    record(&mut tx, Event::ContactUpdated, &c).await?;
    tx.commit().await?;
    Ok(c)
}

/// Delete a contact (its notes and campaign memberships go with it).
pub async fn delete_contact(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
) -> ApiResult<()> {
    let delete = "DELETE FROM contacts WHERE id = ";
    let mut tx = conn.begin().await?;
    delete_row(&mut tx, delete, "contacts", id, expected).await?;
    record(&mut tx, Event::ContactDeleted, &json!({"id": id})).await?;
    tx.commit().await?;
    Ok(())
}

/// One page of companies: `q` is a case-insensitive substring of the name
/// or domain.
pub async fn list_companies(
    conn: &mut AnyConnection,
    p: &CompanyParams,
) -> ApiResult<Page<Company>> {
    let mut sql = Sql::new("SELECT * FROM companies WHERE 1=1");
    if let Some(q) = p.q.as_deref().filter(|q| !q.is_empty()) {
        let pat = crate::http::like_pattern(q);
        sql.push(" AND (LOWER(name) LIKE ")
            .bind(pat.clone())
            .push(" ESCAPE '\\'");
        sql.push(" OR LOWER(COALESCE(domain, '')) LIKE ")
            .bind(pat)
            .push(" ESCAPE '\\')");
    }
    date_range(&mut sql, p.created_from.as_deref(), p.created_to.as_deref())?;
    let lister = Lister::new(
        p.sort.as_deref(),
        p.cursor.as_deref(),
        p.limit,
        &[("name", "name"), ("created_at", "created_at")],
    )?;
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(conn).await?)?;
    Ok(lister.page(items))
}

/// One page of contacts: `q` is a prefix search (`search`).
pub async fn list_contacts(
    conn: &mut AnyConnection,
    kind: DbKind,
    p: &ContactParams,
) -> ApiResult<Page<Contact>> {
    let mut sql = Sql::new("SELECT * FROM contacts WHERE 1=1");
    if let Some(q) = p.q.as_deref().filter(|q| !q.trim().is_empty()) {
        search::contact_prefix(&mut sql, kind, q);
    }
    if let Some(c) = p.company_id {
        sql.push(" AND company_id = ").bind(c);
    }
    date_range(&mut sql, p.created_from.as_deref(), p.created_to.as_deref())?;
    let allowed = [
        ("last_name", "last_name"),
        ("first_name", "first_name"),
        ("email", "email"),
        ("created_at", "created_at"),
    ];
    let lister = Lister::new(p.sort.as_deref(), p.cursor.as_deref(), p.limit, &allowed)?;
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(conn).await?)?;
    Ok(lister.page(items))
}
