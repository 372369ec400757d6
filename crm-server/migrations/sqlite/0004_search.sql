-- Contact search by prefix (customers/search.rs): one index per searched
-- value, lower-cased. Emails are stored lower-cased and already indexed.
CREATE INDEX contacts_full_name_lower ON contacts (LOWER(first_name || ' ' || last_name));
CREATE INDEX contacts_last_name_lower ON contacts (LOWER(last_name));
CREATE INDEX contacts_phone_lower ON contacts (LOWER(phone));
CREATE INDEX companies_name_lower ON companies (LOWER(name));
