//! What the tenant's data must go through before the pods may use the
//! database the spec names: a move from the database in use (recorded in
//! `status.database`), or a restore the annotation asks for. Pure: spec,
//! status and annotations in; the Job's progress is observed later.

use crm_crds::{CrmTenant, DatabaseInUse, DatabaseMode, annotation};
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::{Database, DatabaseTarget, ValidationError, field, resolve_database};

/// A move or a restore of the tenant's data, run by a Job.
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    /// What moves where.
    pub kind: TransferKind,
    /// Name of the Job that runs it.
    pub job: String,
    /// How far it got, as the reconciler observed it.
    pub state: TransferState,
}

/// What a transfer does.
#[derive(Clone, Debug, PartialEq)]
pub enum TransferKind {
    /// `crm-server copy` from the database in use into the spec's.
    Migrate {
        /// The database the pods use until the copy is verified.
        from: Box<Database>,
    },
    /// `crm-server restore` of a backup into the database in use.
    Restore {
        /// The backup's directory name under `/backups`.
        backup: String,
    },
}

/// Where a transfer stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferState {
    /// The pods are being made read-only (and the new database provisioned);
    /// no Job yet.
    Preparing,
    /// The Job runs: the pods stay read-only.
    Running,
    /// The Job succeeded: the copy is verified.
    Succeeded,
    /// The Job failed: the pods are writable on the database they used.
    Failed {
        /// What the Job reported.
        message: String,
    },
}

impl Transfer {
    /// Whether the pods must refuse writes now.
    pub fn read_only(&self) -> bool {
        matches!(
            self.state,
            TransferState::Preparing | TransferState::Running
        )
    }

    /// The database the pods use now: during a move, the old one until the
    /// copy succeeded.
    pub fn serving<'a>(&'a self, target: &'a Database) -> &'a Database {
        match &self.kind {
            TransferKind::Migrate { from } if self.state != TransferState::Succeeded => from,
            _ => target,
        }
    }
}

/// The database a tenant runs on, as status records it.
pub fn in_use(database: &Database) -> DatabaseInUse {
    let (server, secret_ref) = match &database.mode {
        DatabaseTarget::Shared { server } => (Some(server.clone()), None),
        DatabaseTarget::External { secret_ref } => (None, Some(secret_ref.clone())),
        DatabaseTarget::Embedded | DatabaseTarget::Managed { .. } => (None, None),
    };
    DatabaseInUse {
        mode: database.mode.mode(),
        server,
        secret_ref,
    }
}

/// The transfer the tenant needs, if any: a move when the database in use
/// differs from `target`, else a restore the annotation asks for and status
/// does not record as done.
pub fn transfer(
    tenant: &CrmTenant,
    target: &Database,
) -> Result<Option<Transfer>, ValidationError> {
    let name = tenant.name_any();
    let retry = tenant.annotations().get(annotation::RETRY_MIGRATION);
    if let Some(from) = database_in_use(tenant, target)?
        && in_use(&from) != in_use(target)
    {
        let key = format!(
            "{}→{}|{}",
            describe(&in_use(&from)),
            describe(&in_use(target)),
            retry.map_or("", String::as_str)
        );
        return Ok(Some(Transfer {
            kind: TransferKind::Migrate {
                from: Box::new(from),
            },
            job: fit(&name, &format!("-migrate-{}", short_hash(&key))),
            state: TransferState::Preparing,
        }));
    }
    let status = tenant.status.as_ref();
    let Some(backup) = tenant.annotations().get(annotation::RESTORE) else {
        return Ok(None);
    };
    if status.and_then(|s| s.restored.as_ref()) == Some(backup) {
        return Ok(None);
    }
    if !is_backup_name(backup) {
        return Err(field(
            &format!("metadata.annotations[{}]", annotation::RESTORE),
            &format!(
                "{backup:?} is not a backup name: expected crm-<UTC time> as `crm-server backup` writes it, such as crm-20261130T101500.000Z"
            ),
        ));
    }
    let key = format!(
        "{}|{backup}|{}",
        describe(&in_use(target)),
        retry.map_or("", String::as_str)
    );
    Ok(Some(Transfer {
        kind: TransferKind::Restore {
            backup: backup.clone(),
        },
        job: fit(&name, &format!("-restore-{}", short_hash(&key))),
        state: TransferState::Preparing,
    }))
}

/// The database the tenant's pods use now, from status: `status.database`,
/// else (a status written before it was recorded) the recorded mode with
/// the spec's settings; none for a tenant not yet running.
fn database_in_use(
    tenant: &CrmTenant,
    target: &Database,
) -> Result<Option<Database>, ValidationError> {
    let Some(status) = tenant.status.as_ref() else {
        return Ok(None);
    };
    let mut spec = tenant.spec.database.clone().unwrap_or_default();
    let mode: DatabaseMode = match &status.database {
        Some(recorded) => {
            if let Some(server) = &recorded.server {
                spec.shared = Some(crm_crds::SharedDatabaseSpec {
                    server: server.clone(),
                });
            }
            if let Some(secret_ref) = &recorded.secret_ref {
                spec.external = Some(crm_crds::ExternalDatabaseSpec {
                    secret_ref: secret_ref.clone(),
                });
            }
            recorded.mode
        }
        None => match status.database_mode {
            Some(mode) => mode,
            None if status.sizing.is_some() => DatabaseMode::Embedded,
            None => return Ok(None),
        },
    };
    if mode == target.mode.mode() && status.database.is_none() {
        // Recorded before servers and URLs were: take the spec's.
        return Ok(Some(target.clone()));
    }
    resolve_database(spec, mode).map(Some)
}

fn describe(database: &DatabaseInUse) -> String {
    let mut text = format!("{:?}", database.mode);
    if let Some(server) = &database.server {
        text.push_str(&format!(":{server}"));
    }
    if let Some(secret) = &database.secret_ref {
        text.push_str(&format!(":{}/{}", secret.name, secret.key));
    }
    text
}

/// Eight hex digits of SHA-256: one Job name per request.
fn short_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))[..8].to_owned()
}

/// `<name><suffix>`, the name cut so that the whole stays within the 63
/// characters a Job's name may have (its pods carry it as a label value).
pub fn fit(name: &str, suffix: &str) -> String {
    let keep = 63usize.saturating_sub(suffix.len()).min(name.len());
    format!("{}{suffix}", name[..keep].trim_end_matches('-'))
}

/// `crm-YYYYMMDDTHHMMSS[.mmm]Z`, as `crm-server backup` names a backup; no
/// path separators, so the name cannot leave `/backups`.
pub fn is_backup_name(name: &str) -> bool {
    let Some(time) = name.strip_prefix("crm-") else {
        return false;
    };
    name.len() <= 40
        && time.ends_with('Z')
        && time.len() >= 16
        && time
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'T' | b'Z' | b'.'))
}
