//! `crm-server backup` and `crm-server restore`.
//!
//! A backup is a directory `crm-YYYYMMDDTHHMMSS.mmmZ` holding `manifest.json`
//! (time, schema version, and per table its columns, row count and
//! checksum) and one `TABLE.jsonl.gz` per table: gzip-compressed lines,
//! each a JSON array of one row's values in the manifest's column order,
//! rows in primary-key order. It is written under a `.partial` name and
//! renamed when complete, so a directory without that suffix is a whole
//! backup.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::{
    Checksum, Column, Load, Sink, TableSummary, TransferError, Value, clear, compare,
    first_non_empty, key_of, open_source, open_target, reset_sequences, rows, schema, snapshot,
    summarize,
};

/// The format of backups this version writes and reads.
pub const FORMAT: u32 = 1;
/// A backup directory's name starts with this.
pub const PREFIX: &str = "crm-";
const PARTIAL: &str = ".partial";
const MANIFEST: &str = "manifest.json";

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The newest migration the source had applied.
    pub schema_version: i64,
    /// Every table.
    pub tables: Vec<ManifestTable>,
}

/// One table of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestTable {
    /// Rows and checksum.
    #[serde(flatten)]
    pub summary: TableSummary,
    /// Columns, in the order each line gives the values.
    pub columns: Vec<Column>,
    /// The file, relative to the backup's directory.
    pub file: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |e| TransferError::Backup {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Exports a consistent snapshot of the database at `url` into a new
/// directory under `dir`, then keeps only the newest `retain` backups
/// there (when given). Returns the backup's directory and manifest.
pub async fn backup(
    url: &str,
    dir: &Path,
    retain: Option<usize>,
) -> Result<(PathBuf, Manifest), TransferError> {
    let source = open_source(url).await?;
    let mut snap = snapshot(&source).await?;
    let tables = schema(&mut snap, source.kind).await?;
    let (version,): (i64,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *snap)
        .await
        .map_err(TransferError::query("reading the schema version"))?;
    let now = jiff::Timestamp::now();
    let name = format!("{PREFIX}{}", now.strftime("%Y%m%dT%H%M%S%.3fZ"));
    let done = dir.join(&name);
    let partial = dir.join(format!("{name}{PARTIAL}"));
    if done.exists() {
        return Err(TransferError::Backup {
            path: done.display().to_string(),
            message: "already exists".into(),
        });
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    let mut manifest = Manifest {
        format: FORMAT,
        created_at: now.to_string(),
        schema_version: version,
        tables: Vec::new(),
    };
    for (table, columns) in &tables {
        let file = format!("{table}.jsonl.gz");
        let path = partial.join(&file);
        let out = File::create(&path).map_err(io(&path))?;
        let mut export = Export {
            out: GzEncoder::new(BufWriter::new(out), Compression::default()),
            checksum: Checksum::default(),
            path: path.clone(),
        };
        rows::read(&mut snap, table, key_of(table), columns, &mut export).await?;
        let summary = export.checksum.finish(table);
        let writer = export.out.finish().map_err(io(&path))?;
        let file_handle = writer.into_inner().map_err(|e| io(&path)(e.into_error()))?;
        file_handle.sync_all().map_err(io(&path))?;
        manifest.tables.push(ManifestTable {
            summary,
            columns: columns.clone(),
            file,
        });
    }
    drop(snap);
    let manifest_path = partial.join(MANIFEST);
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| TransferError::Backup {
        path: manifest_path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut file = File::create(&manifest_path).map_err(io(&manifest_path))?;
    file.write_all(&text).map_err(io(&manifest_path))?;
    file.sync_all().map_err(io(&manifest_path))?;
    std::fs::rename(&partial, &done).map_err(io(&done))?;
    if let Some(retain) = retain {
        prune(dir, retain)?;
    }
    Ok((done, manifest))
}

struct Export {
    out: GzEncoder<BufWriter<File>>,
    checksum: Checksum,
    path: PathBuf,
}

impl Sink for Export {
    async fn row(&mut self, values: Vec<Value>) -> Result<(), TransferError> {
        self.checksum.add(&values);
        serde_json::to_writer(&mut self.out, &values).map_err(|e| TransferError::Backup {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        self.out.write_all(b"\n").map_err(io(&self.path))
    }
}

/// The complete backups under `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, TransferError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(PREFIX) && !name.ends_with(PARTIAL) && path.join(MANIFEST).is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Keeps the newest `retain` backups under `dir` and removes the rest, and
/// any `.partial` directory an interrupted backup left.
pub fn prune(dir: &Path, retain: usize) -> Result<Vec<PathBuf>, TransferError> {
    let backups = list(dir)?;
    let mut removed: Vec<PathBuf> = backups
        .iter()
        .take(backups.len().saturating_sub(retain))
        .cloned()
        .collect();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(PREFIX) && name.ends_with(PARTIAL) {
            removed.push(path);
        }
    }
    for path in &removed {
        std::fs::remove_dir_all(path).map_err(io(path))?;
    }
    Ok(removed)
}

/// Reads a backup's manifest.
pub fn manifest(backup: &Path) -> Result<Manifest, TransferError> {
    let path = backup.join(MANIFEST);
    let text = std::fs::read(&path).map_err(io(&path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| TransferError::Backup {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if manifest.format != FORMAT {
        return Err(TransferError::Backup {
            path: path.display().to_string(),
            message: format!(
                "format {} is not the format this version reads ({FORMAT})",
                manifest.format
            ),
        });
    }
    Ok(manifest)
}

/// Loads the backup at `backup` into the database at `url`, which must be
/// empty unless `replace` is set (its rows are then removed in the same
/// transaction). Every file must match its manifest entry before anything
/// is committed, and the database must give the manifest's figures after.
pub async fn restore(backup: &Path, url: &str, replace: bool) -> Result<Manifest, TransferError> {
    let manifest = manifest(backup)?;
    let target = open_target(url).await?;
    let mut tx = target
        .pool
        .begin()
        .await
        .map_err(TransferError::query("beginning the restore's transaction"))?;
    let tables = schema(&mut tx, target.kind).await?;
    for (name, columns) in &tables {
        let entry = manifest.tables.iter().find(|t| &t.summary.name == name);
        if entry.map(|e| &e.columns) != Some(columns) {
            return Err(TransferError::Schema(format!(
                "table {name} has other columns in the backup than in the database"
            )));
        }
    }
    if let Some((table, rows)) = first_non_empty(&mut tx).await? {
        if !replace {
            return Err(TransferError::TargetNotEmpty { table, rows });
        }
        clear(&mut tx).await?;
    }
    for (name, columns) in &tables {
        let Some(entry) = manifest.tables.iter().find(|t| &t.summary.name == name) else {
            continue;
        };
        let path = backup.join(&entry.file);
        let file = File::open(&path).map_err(io(&path))?;
        let mut load = Load::new(&mut tx, name, columns);
        for (n, line) in BufReader::new(GzDecoder::new(file)).lines().enumerate() {
            let line = line.map_err(io(&path))?;
            let values: Vec<Value> =
                serde_json::from_str(&line).map_err(|e| TransferError::Backup {
                    path: path.display().to_string(),
                    message: format!("line {}: {e}", n + 1),
                })?;
            load.row(values).await?;
        }
        let read = load.finish(name).await?;
        compare(std::slice::from_ref(&entry.summary), &[read]).map_err(|e| {
            TransferError::Backup {
                path: path.display().to_string(),
                message: format!("does not match the manifest: {e}"),
            }
        })?;
    }
    reset_sequences(&mut tx, target.kind).await?;
    tx.commit()
        .await
        .map_err(TransferError::query("committing the restore"))?;
    let expected: Vec<TableSummary> = manifest.tables.iter().map(|t| t.summary.clone()).collect();
    compare(&expected, &summarize(&target).await?)?;
    Ok(manifest)
}
