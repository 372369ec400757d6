CREATE TABLE companies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    domain TEXT,
    industry TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX companies_name ON companies (name);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id BIGINT REFERENCES companies (id) ON DELETE SET NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    phone TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX contacts_company ON contacts (company_id);
CREATE INDEX contacts_last_name ON contacts (last_name);

CREATE TABLE deals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    company_id BIGINT REFERENCES companies (id) ON DELETE SET NULL,
    contact_id BIGINT REFERENCES contacts (id) ON DELETE SET NULL,
    stage TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    expected_close TEXT,
    owner TEXT NOT NULL,
    closed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX deals_stage ON deals (stage);
CREATE INDEX deals_company ON deals (company_id);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deal_id BIGINT NOT NULL UNIQUE REFERENCES deals (id),
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id BIGINT REFERENCES contacts (id) ON DELETE CASCADE,
    deal_id BIGINT REFERENCES deals (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX notes_contact ON notes (contact_id);
CREATE INDEX notes_deal ON notes (deal_id);

CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id BIGINT REFERENCES contacts (id) ON DELETE SET NULL,
    subject TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    rating BIGINT,
    feedback TEXT,
    resolved_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX tickets_status ON tickets (status);

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    budget_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    starts_on TEXT,
    ends_on TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE campaign_members (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    response TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (campaign_id, contact_id)
);
