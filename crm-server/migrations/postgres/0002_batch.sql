-- Answers of requests sent with an Idempotency-Key, replayed when the same
-- key comes again with the same body.
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    status BIGINT NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Batch upserts match companies on their domain, ignoring case.
CREATE INDEX companies_domain_lower ON companies (LOWER(domain));
