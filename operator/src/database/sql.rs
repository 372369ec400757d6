//! Names and quoting for the Shared mode's SQL. Pure: no I/O.
//!
//! PostgreSQL's DDL (`CREATE ROLE`, `ALTER ROLE … PASSWORD`, `CREATE
//! DATABASE`) takes no bind parameters, so identifiers and the one literal we
//! send are quoted here, the way PostgreSQL's own `quote_ident` and
//! `quote_literal` do it, and every identifier is quoted, always.

use sha2::{Digest, Sha256};

/// PostgreSQL's identifier limit (NAMEDATALEN − 1), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;
/// Hex digits of the hash that keeps two tenants' names apart.
const HASH_DIGITS: usize = 10;

/// The role and database of one tenant on a shared server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Login role.
    pub role: String,
    /// Database, owned by the role.
    pub database: String,
}

/// `crm_<namespace>_<name>_<hash>`: readable where the names allow it, and
/// distinct for distinct tenants whatever they are called. Characters other
/// than ASCII letters and digits become `_`, the readable part is cut so
/// that the whole fits PostgreSQL's 63 bytes, and the suffix is the first 40
/// bits of SHA-256 over `namespace/name` — two tenants whose sanitised names
/// coincide (`a-b` and `a_b`, or two long names cut at the same place) still
/// differ there. Roles and databases live in separate catalogs, so both
/// carry the same name.
pub fn names(namespace: &str, name: &str) -> Names {
    let digest = hex::encode(Sha256::digest(format!("{namespace}/{name}").as_bytes()));
    let mut readable = format!("crm_{}_{}", sanitise(namespace), sanitise(name));
    readable.truncate(MAX_IDENTIFIER_BYTES - HASH_DIGITS - 1);
    let identifier = format!("{readable}_{}", &digest[..HASH_DIGITS]);
    Names {
        role: identifier.clone(),
        database: identifier,
    }
}

/// Lower-case ASCII letters and digits kept, everything else `_`: the result
/// is one byte per character, so cutting it never splits a character.
fn sanitise(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `"identifier"`, with embedded double quotes doubled: the identifier means
/// exactly itself, whatever characters it holds.
pub fn quote_identifier(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A string literal meaning exactly `value`: single quotes doubled, and when
/// a backslash occurs, the escape-string form `E'…'` with backslashes
/// doubled, so the result is the same whatever `standard_conforming_strings`
/// says (PostgreSQL's `quote_literal` does the same).
pub fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_when_the_tenant_names_allow_it() {
        let n = names("team-a", "acme");
        assert!(n.role.starts_with("crm_team_a_acme_"), "{}", n.role);
        assert_eq!(n.role, n.database);
        assert_eq!(n.role.len(), "crm_team_a_acme_".len() + HASH_DIGITS);
    }

    #[test]
    fn hostile_names_become_short_plain_and_distinct_identifiers() {
        let long = "x".repeat(250);
        let hostile = [
            ("ns", "a\"; DROP ROLE postgres; --"),
            ("ns", "a'; DROP DATABASE postgres; --"),
            ("ns", "ünïcødé-名前"),
            ("ns", long.as_str()),
            ("ns", &format!("{long}y")),
            ("a-b", "c"),
            ("a_b", "c"),
            ("a", "b-c"),
        ];
        let all: std::collections::BTreeSet<String> =
            hostile.iter().map(|(ns, n)| names(ns, n).role).collect();
        assert_eq!(all.len(), hostile.len(), "distinct: {all:#?}");
        for name in &all {
            assert!(name.len() <= MAX_IDENTIFIER_BYTES, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_identifier("plain"), "\"plain\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn literals_double_quotes_and_escape_backslashes() {
        assert_eq!(quote_literal("abc"), "'abc'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }
}
