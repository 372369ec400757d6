//! Failures of a shared server, classified for conditions and built from
//! parts that hold no credential: the SQLSTATE and the server's message with
//! every secret of the call cut out, or the kind of an I/O error — never
//! sqlx's own message, which may quote a URL.

/// What went wrong talking to a shared server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    /// The class of failure.
    pub kind: DbErrorKind,
    /// What happened, free of credentials.
    pub message: String,
}

/// Classes of failure, each with its condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbErrorKind {
    /// No connection: refused, timed out, TLS failed, server starting up.
    Unreachable,
    /// The server refused the admin credentials.
    AuthenticationFailed,
    /// The admin role lacks a privilege the operator needs.
    PermissionDenied,
    /// The admin URL cannot be parsed.
    InvalidUrl,
    /// Any other failure of a statement.
    Failed,
}

impl DbErrorKind {
    /// CamelCase reason for conditions and Events.
    pub fn reason(self) -> &'static str {
        match self {
            DbErrorKind::Unreachable => "ServerUnreachable",
            DbErrorKind::AuthenticationFailed => "AuthenticationFailed",
            DbErrorKind::PermissionDenied => "PermissionDenied",
            DbErrorKind::InvalidUrl => "InvalidServerUrl",
            DbErrorKind::Failed => "DatabaseError",
        }
    }
}

impl DbError {
    pub(crate) fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Classifies an sqlx error from its parts; `secrets` are cut out of the
    /// server's message, should it ever quote one.
    pub(crate) fn from_sqlx(error: &sqlx::Error, doing: &str, secrets: &[&str]) -> Self {
        let (kind, detail) = match error {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let kind = match code.as_str() {
                    "28P01" | "28000" => DbErrorKind::AuthenticationFailed,
                    "42501" => DbErrorKind::PermissionDenied,
                    "57P03" | "53300" | "57P01" => DbErrorKind::Unreachable,
                    _ => DbErrorKind::Failed,
                };
                let mut message = db.message().to_owned();
                for secret in secrets.iter().filter(|s| !s.is_empty()) {
                    message = message.replace(secret, "<redacted>");
                }
                (kind, format!("{message} (SQLSTATE {code})"))
            }
            sqlx::Error::Io(io) => (DbErrorKind::Unreachable, io.kind().to_string()),
            sqlx::Error::Tls(_) => (DbErrorKind::Unreachable, "TLS failed".to_owned()),
            sqlx::Error::Configuration(_) => (
                DbErrorKind::InvalidUrl,
                "the connection settings are invalid".to_owned(),
            ),
            sqlx::Error::Protocol(_) => (
                DbErrorKind::Failed,
                "unexpected answer from the server".to_owned(),
            ),
            _ => (DbErrorKind::Failed, "unexpected failure".to_owned()),
        };
        Self::new(kind, format!("{doing}: {detail}"))
    }
}
