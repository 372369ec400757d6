//! CSV exports are streamed: many chunks arrive whole and in order.

use crate::common;

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

#[tokio::test]
async fn a_compressed_export_arrives_whole() {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let app = TestApp::new(common::Backend::Sqlite).await;
    let req = Request::get("/api/v1/contacts.csv")
        .header(header::AUTHORIZATION, format!("Bearer {}", common::KEY))
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .expect("req");
    let res = app.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(
        res.headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let body = res.into_body().collect().await;
    assert!(body.is_ok(), "{:?}", body.err());
}
