-- The dashboard's pipeline and revenue figures read only this index: one
-- ordered scan instead of a lookup of every deal.
CREATE INDEX deals_report ON deals (stage, currency, amount_minor, closed_at);
