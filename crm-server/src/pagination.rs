//! Keyset pagination: a page continues after the last row of the previous
//! one, by (sort column, tie column), so rows inserted or deleted meanwhile
//! never make a client skip or repeat a row.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{Sql, Val};
use crate::error::ApiError;
use crate::http::{DEFAULT_LIMIT, MAX_LIMIT, Page};

/// What the opaque cursor holds.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// The sort it belongs to; a cursor is only valid with the same sort.
    s: String,
    /// Sort value of the last row.
    v: Value,
    /// Tie value of the last row.
    i: i64,
}

/// One list request: sort, position and page size.
#[derive(Debug)]
pub struct Lister {
    sort: String,
    field: &'static str,
    column: &'static str,
    tie: &'static str,
    desc: bool,
    after: Option<Cursor>,
    limit: i64,
}

impl Lister {
    /// Validate `sort` (`field` or `-field`, one of `allowed` as (wire name,
    /// SQL expression), or `id`), `cursor` and `limit`.
    pub fn new(
        sort: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
        allowed: &[(&'static str, &'static str)],
    ) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let sort = sort.unwrap_or("id").to_string();
        let (desc, name) = match sort.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, sort.as_str()),
        };
        let (field, column) = allowed
            .iter()
            .copied()
            .chain([("id", "id")])
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ApiError::invalid("sort", "unknown sort field"))?;
        let after = match cursor {
            None => None,
            Some(c) => Some(decode(c).filter(|c| c.s == sort).ok_or_else(|| {
                ApiError::invalid("cursor", "invalid cursor (or from a different sort)")
            })?),
        };
        Ok(Self {
            sort,
            field,
            column,
            tie: "id",
            desc,
            after,
            limit,
        })
    }

    /// Break ties by `tie` instead of `id` (for tables keyed otherwise).
    pub fn with_tie(mut self, tie: &'static str) -> Self {
        self.tie = tie;
        self
    }

    /// Append the position condition (the query must already have a WHERE
    /// clause), ORDER BY and LIMIT (one extra row detects a next page).
    pub fn apply(&self, sql: &mut Sql) {
        let op = if self.desc { " < " } else { " > " };
        if let Some(c) = &self.after {
            let v = match &c.v {
                Value::Number(n) => Val::Int(n.as_i64().unwrap_or(0)),
                Value::String(s) => Val::Text(s.clone()),
                _ => Val::Text(String::new()),
            };
            sql.push(" AND (")
                .push(self.column)
                .push(op)
                .bind(v.clone());
            sql.push(" OR (").push(self.column).push(" = ").bind(v);
            sql.push(" AND ")
                .push(self.tie)
                .push(op)
                .bind(c.i)
                .push("))");
        }
        let dir = if self.desc { " DESC" } else { " ASC" };
        sql.push(" ORDER BY ").push(self.column).push(dir);
        sql.push(", ").push(self.tie).push(dir);
        sql.push(" LIMIT ").bind(self.limit + 1);
    }

    /// Build the page from the fetched rows.
    pub fn page<T: Serialize>(&self, mut items: Vec<T>) -> Page<T> {
        let more = items.len() as i64 > self.limit;
        items.truncate(self.limit as usize);
        let next_cursor = if more {
            items.last().and_then(|last| {
                let json = serde_json::to_value(last).ok()?;
                // Nullable sort columns are compared as '' (see COALESCE).
                let v = match &json[self.field] {
                    Value::Null => Value::String(String::new()),
                    other => other.clone(),
                };
                let i = json[self.tie].as_i64()?;
                encode(&Cursor {
                    s: self.sort.clone(),
                    v,
                    i,
                })
            })
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

fn encode(c: &Cursor) -> Option<String> {
    let json = serde_json::to_vec(c).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

fn decode(c: &str) -> Option<Cursor> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let cur: Cursor = serde_json::from_slice(&raw).ok()?;
    matches!(cur.v, Value::String(_) | Value::Number(_)).then_some(cur)
}
