//! CSV exports are streamed: many chunks arrive whole and in order.

mod common;

use axum::http::{Method, StatusCode, header};
use common::TestApp;

both!(
    a_large_export_streams_every_row_once_in_order,
    |app: TestApp| async move {
        let empty = app.call(Method::GET, "/api/v1/contacts.csv", None).await;
        assert_eq!(empty.status, StatusCode::OK);
        assert_eq!(
            String::from_utf8(empty.raw).expect("utf8"),
            "id,company_id,first_name,last_name,email,phone,created_at,updated_at,version\n",
            "an empty export still has its header row"
        );
        // About 3,000 rows of ~110 bytes: several 64 KiB chunks.
        let n = 3000;
        let mut csv = String::from("first_name,last_name,email\n");
        for i in 0..n {
            csv.push_str(&format!("First{i},Last{i},person{i}@example.org\n"));
        }
        let r = app
            .post_raw("/api/v1/contacts.csv", "text/csv", csv.into_bytes())
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let out = app.call(Method::GET, "/api/v1/contacts.csv", None).await;
        assert_eq!(out.status, StatusCode::OK);
        let ct = out.headers.get(header::CONTENT_TYPE).expect("content type");
        assert!(
            ct.to_str().is_ok_and(|v| v.starts_with("text/csv")),
            "{ct:?}"
        );
        assert!(out.raw.len() > 3 * 64 * 1024, "{} bytes", out.raw.len());
        let mut rdr = csv::Reader::from_reader(out.raw.as_slice());
        let mut count = 0;
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.expect("a whole record");
            assert_eq!(&rec[4], format!("person{i}@example.org"), "row {i}");
            count += 1;
        }
        assert_eq!(count, n);
    }
);
