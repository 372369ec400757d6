-- Contact search by prefix (customers/search.rs): one index per searched
-- value, lower-cased, in byte order (COLLATE "C") so that a range holds
-- exactly the values with a given prefix.
CREATE INDEX contacts_full_name_lower ON contacts ((LOWER(first_name || ' ' || last_name) COLLATE "C"));
CREATE INDEX contacts_last_name_lower ON contacts ((LOWER(last_name) COLLATE "C"));
CREATE INDEX contacts_email_bytes ON contacts ((email COLLATE "C"));
CREATE INDEX contacts_phone_lower ON contacts ((LOWER(phone) COLLATE "C"));
CREATE INDEX companies_name_lower ON companies ((LOWER(name) COLLATE "C"));
