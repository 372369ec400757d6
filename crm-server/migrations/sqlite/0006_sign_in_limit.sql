-- Failed sign-ins to the web UI, one row each, per lower-cased email and
-- client address ("email address"), kept for the rate limit's window so
-- that every replica counts the same failures.
CREATE TABLE ui_sign_in_failures (
    limit_key TEXT NOT NULL,
    failed_at TEXT NOT NULL
);
CREATE INDEX ui_sign_in_failures_key ON ui_sign_in_failures (limit_key, failed_at);
CREATE INDEX ui_sign_in_failures_at ON ui_sign_in_failures (failed_at);
