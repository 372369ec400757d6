//! `crm-server copy`: a consistent snapshot of one database into another,
//! verified by reading the target back.

use std::time::Instant;

use serde::Serialize;

use super::{
    Load, TableSummary, TransferError, clear, compare, first_non_empty, key_of, open_source,
    open_target, reset_sequences, rows, schema, snapshot, summarize,
};

/// What a verified copy did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// Every table's rows and checksum, equal on both sides.
    pub tables: Vec<TableSummary>,
    /// Wall-clock seconds, verification included.
    pub seconds: f64,
}

/// Copies every table of `from` into `to` and verifies the result. The
/// target must be empty unless `replace` is set, in which case its rows are
/// removed in the same transaction that writes the new ones.
pub async fn copy(from: &str, to: &str, replace: bool) -> Result<CopyReport, TransferError> {
    let started = Instant::now();
    if from == to {
        return Err(TransferError::Schema(
            "the source and the target are the same database".into(),
        ));
    }
    let source = open_source(from).await?;
    let target = open_target(to).await?;
    let mut snap = snapshot(&source).await?;
    let tables = schema(&mut snap, source.kind).await?;
    let mut tx = target
        .pool
        .begin()
        .await
        .map_err(TransferError::query("beginning the target's transaction"))?;
    let target_tables = schema(&mut tx, target.kind).await?;
    if let Some(((name, _), _)) = tables
        .iter()
        .zip(&target_tables)
        .find(|(source, target)| source != target)
    {
        return Err(TransferError::Schema(format!(
            "table {name} has other columns in the source than in the target"
        )));
    }
    if let Some((table, rows)) = first_non_empty(&mut tx).await? {
        if !replace {
            return Err(TransferError::TargetNotEmpty { table, rows });
        }
        clear(&mut tx).await?;
    }
    let mut expected = Vec::with_capacity(tables.len());
    for (name, columns) in &tables {
        let mut load = Load::new(&mut tx, name, columns);
        rows::read(&mut snap, name, key_of(name), columns, &mut load).await?;
        expected.push(load.finish(name).await?);
    }
    reset_sequences(&mut tx, target.kind).await?;
    tx.commit()
        .await
        .map_err(TransferError::query("committing the target"))?;
    drop(snap);
    let actual = summarize(&target).await?;
    compare(&expected, &actual)?;
    Ok(CopyReport {
        tables: expected,
        seconds: started.elapsed().as_secs_f64(),
    })
}
