//! SCRAM-SHA-256 verifiers (RFC 5802, RFC 7677), as PostgreSQL stores them in
//! `pg_authid.rolpassword`: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
//!
//! The operator sets a role's password by sending the verifier it computed,
//! never the password: `ALTER ROLE … PASSWORD 'SCRAM-SHA-256$…'` is stored as
//! is, so the password crosses no wire and lands in no server log, even with
//! `log_statement = 'all'`. The same computation checks whether a stored
//! verifier belongs to a password, which is how a second reconcile knows it
//! has nothing to change.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's default `scram_iterations`.
pub const ITERATIONS: u32 = 4096;
const SALT_BYTES: usize = 16;
const PREFIX: &str = "SCRAM-SHA-256$";

/// Why no verifier was made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    /// SASLprep leaves printable ASCII as it is and nothing else is needed for
    /// the generated credentials; other passwords are refused rather than
    /// hashed differently from how PostgreSQL would.
    #[error("the database password must be printable ASCII")]
    NotPrintableAscii,
    /// No random bytes for the salt.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// A verifier for `password` with a fresh random salt.
pub fn verifier(password: &str) -> Result<String, ScramError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|_| ScramError::Random)?;
    verifier_with(password, &salt, ITERATIONS)
}

/// A verifier for `password` with this salt and iteration count.
pub fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> Result<String, ScramError> {
    if !password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ScramError::NotPrintableAscii);
    }
    let (stored_key, server_key) = keys(password.as_bytes(), salt, iterations);
    Ok(format!(
        "{PREFIX}{iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    ))
}

/// Whether `stored` (a `rolpassword`) is a SCRAM verifier of `password`.
/// Anything else (an MD5 hash, no password, garbage) is not.
pub fn verifies(password: &str, stored: &str) -> bool {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return false;
    };
    let Some((iterations, rest)) = rest.split_once(':') else {
        return false;
    };
    let Some((salt, _)) = rest.split_once('$') else {
        return false;
    };
    let (Ok(iterations), Ok(salt)) = (iterations.parse::<u32>(), STANDARD.decode(salt)) else {
        return false;
    };
    if iterations == 0 {
        return false;
    }
    verifier_with(password, &salt, iterations).is_ok_and(|mine| mine == stored)
}

/// StoredKey := H(HMAC(SaltedPassword, "Client Key")),
/// ServerKey := HMAC(SaltedPassword, "Server Key").
fn keys(password: &[u8], salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32]) {
    let salted = hi(password, salt, iterations);
    let client_key = hmac(&salted, &[b"Client Key"]);
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    (stored_key, hmac(&salted, &[b"Server Key"]))
}

/// Hi() of RFC 5802: PBKDF2-HMAC-SHA-256 with one 32-byte output block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &[&u]);
        out.iter_mut().zip(u).for_each(|(o, b)| *o ^= b);
    }
    out
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so this never fails.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example: user "user", password "pencil", this salt and
    /// 4096 iterations give ServerSignature 6rriTRBi…; the ServerKey below is
    /// what that signature was computed with.
    #[test]
    fn the_rfc_7677_example_gives_its_server_key() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let (_, server_key) = keys(b"pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac(&server_key, &[auth_message.as_bytes()]);
        assert_eq!(
            STANDARD.encode(signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn a_verifier_verifies_its_password_and_no_other() {
        let v = verifier("correct-horse").expect("verifier");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert!(verifies("correct-horse", &v));
        assert!(!verifies("correct-horsf", &v));
        assert!(!verifies("correct-horse", "md5abcdef"));
        assert!(!verifies("correct-horse", ""));
        assert_ne!(
            v,
            verifier("correct-horse").expect("verifier"),
            "fresh salt"
        );
    }

    #[test]
    fn non_ascii_passwords_are_refused() {
        assert_eq!(verifier("pässword"), Err(ScramError::NotPrintableAscii));
    }
}
