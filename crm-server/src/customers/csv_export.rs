//! CSV exports streamed in constant memory: rows are read from the database
//! as a stream and written out in chunks of about `CHUNK` bytes, with at most
//! `IN_FLIGHT` chunks waiting for a slow client. Memory stays the same
//! whether a tenant has a hundred contacts or a million.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;
use sqlx::any::AnyRow;
use tokio::sync::mpsc;

use crate::db::{Db, Sql};

/// Bytes collected before a chunk is sent.
const CHUNK: usize = 64 * 1024;
/// Chunks queued for the client before reading from the database pauses.
const IN_FLIGHT: usize = 4;

/// Header row of a companies export (the fields of [`super::Company`]).
pub const COMPANY_HEADER: &str = "id,name,domain,industry,created_at,updated_at,version";
/// Header row of a contacts export (the fields of [`super::Contact`]).
pub const CONTACT_HEADER: &str =
    "id,company_id,first_name,last_name,email,phone,created_at,updated_at,version";

type Chunk = Result<Bytes, std::io::Error>;

/// Answer 200 `text/csv` at once and stream every row of `sql` as `T`
/// after `header`. A failure after the first byte can only end the
/// response early: it is logged and the connection is cut, so the client
/// sees an incomplete body rather than a complete-looking short file.
pub fn stream<T>(db: &Db, sql: Sql, header: &'static str) -> Response
where
    T: Serialize + for<'r> sqlx::FromRow<'r, AnyRow> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Chunk>(IN_FLIGHT);
    let pool = db.pool.clone();
    tokio::spawn(async move {
        if let Err(e) = produce::<T>(&pool, &sql, header, &tx).await {
            tracing::error!(error = %e, "CSV export stopped");
            // The receiver may be gone already (client left): nothing to do.
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    let mut res = Body::from_stream(Chunks(rx)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    res
}

/// The receiving end as a body stream. Unlike `stream::unfold`, it may be
/// polled again after its end (compression does), answering `None` again.
#[derive(Debug)]
struct Chunks(mpsc::Receiver<Chunk>);

impl futures::Stream for Chunks {
    type Item = Chunk;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Chunk>> {
        self.get_mut().0.poll_recv(cx)
    }
}

#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("reading rows: {0}")]
    Read(#[from] sqlx::Error),
    #[error("writing CSV: {0}")]
    Write(#[from] csv::Error),
    #[error("flushing CSV: {0}")]
    Flush(#[from] std::io::Error),
    #[error("the client went away")]
    Gone,
}

async fn produce<T>(
    pool: &sqlx::AnyPool,
    sql: &Sql,
    header: &str,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), ExportError>
where
    T: Serialize + for<'r> sqlx::FromRow<'r, AnyRow>,
{
    let writer = || {
        csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::with_capacity(CHUNK + 16 * 1024))
    };
    let mut w = writer();
    w.write_record(header.split(','))?;
    let mut rows = sql.fetch(pool);
    while let Some(row) = rows.next().await {
        w.serialize(T::from_row(&row?)?)?;
        if w.get_ref().len() >= CHUNK {
            let full = std::mem::replace(&mut w, writer())
                .into_inner()
                .map_err(|e| e.into_error())?;
            tx.send(Ok(Bytes::from(full)))
                .await
                .map_err(|_| ExportError::Gone)?;
        }
    }
    let rest = w.into_inner().map_err(|e| e.into_error())?;
    if !rest.is_empty() {
        tx.send(Ok(Bytes::from(rest)))
            .await
            .map_err(|_| ExportError::Gone)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customers::{Company, Contact};

    fn header_of<T: Serialize>(sample: &T) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(sample).expect("serialize");
        let text = String::from_utf8(w.into_inner().expect("flush")).expect("utf8");
        text.lines().next().unwrap_or_default().to_string()
    }

    #[test]
    fn header_rows_name_the_serialized_fields_in_order() {
        let company = Company {
            id: 1,
            name: "n".into(),
            domain: None,
            industry: None,
            created_at: "t".into(),
            updated_at: "t".into(),
            version: 1,
        };
        assert_eq!(header_of(&company), COMPANY_HEADER);
        let contact = Contact {
            id: 1,
            company_id: None,
            first_name: "a".into(),
            last_name: "b".into(),
            email: "a@b.io".into(),
            phone: None,
            created_at: "t".into(),
            updated_at: "t".into(),
            version: 1,
        };
        assert_eq!(header_of(&contact), CONTACT_HEADER);
    }
}
