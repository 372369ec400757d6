//! `crm-operator plan`: the offline main job. Manifests in, sizing and the
//! objects the operator would create out; nothing touches a cluster.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::OutputFormat;
use super::admission::{FieldProblem, Problem, admit_document};
use super::render;
use crate::build::{self, Credentials, Desired};
use crate::validate::{self, Tenant};

/// What stands in for secret values in `plan`'s output.
pub const GENERATED: &str = "<generated>";

/// Why `plan` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The input has problems; each names its file, tenant and field.
    #[error("{} problem(s) in the input", .0.len())]
    Invalid(Vec<Problem>),
}

/// One tenant, validated and built.
#[derive(Debug)]
pub struct Planned {
    /// The validated tenant with its sizing.
    pub tenant: Tenant,
    /// Its objects, secrets as placeholders.
    pub desired: Desired,
}

/// Plans every tenant in `files`; all or nothing.
pub fn plan(files: &[PathBuf], namespace: &str, format: OutputFormat) -> Result<String, PlanError> {
    let mut problems = Vec::new();
    let mut planned = Vec::new();
    for file in files {
        plan_file(file, namespace, &mut planned, &mut problems);
    }
    check_unique(&planned, &mut problems);
    if planned.is_empty() && problems.is_empty() {
        problems.push(Problem {
            source: files
                .iter()
                .map(|f| source_name(f))
                .collect::<Vec<_>>()
                .join(", "),
            document: None,
            tenant: None,
            path: None,
            message: "no CrmTenant documents found".into(),
        });
    }
    if !problems.is_empty() {
        return Err(PlanError::Invalid(problems));
    }
    Ok(match format {
        OutputFormat::Text => render::text(&planned),
        OutputFormat::Json => render::json_lines(&planned),
    })
}

fn plan_file(
    file: &Path,
    namespace: &str,
    planned: &mut Vec<Planned>,
    problems: &mut Vec<Problem>,
) {
    let source = source_name(file);
    let whole_file = |message: String| Problem {
        source: source.clone(),
        document: None,
        tenant: None,
        path: None,
        message,
    };
    let text = match read(file) {
        Ok(text) => text,
        Err(e) => return problems.push(whole_file(format!("cannot read: {e}"))),
    };
    let documents: Vec<Value> = match serde_saphyr::from_multiple(&text) {
        Ok(documents) => documents,
        Err(e) => return problems.push(whole_file(format!("malformed YAML: {e}"))),
    };
    for (index, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        let tenant = tenant_name(&document, namespace);
        let at = |p: FieldProblem| Problem {
            source: source.clone(),
            document: Some(index + 1),
            tenant: tenant.clone(),
            path: p.path,
            message: p.message,
        };
        match admit_document(document, namespace)
            .and_then(|t| validate::validate(&t).map_err(|e| vec![validation_problem(e)]))
        {
            Ok(tenant) => planned.push(Planned {
                desired: build::build(&tenant, &placeholder_credentials()),
                tenant,
            }),
            Err(found) => problems.extend(found.into_iter().map(at)),
        }
    }
}

fn placeholder_credentials() -> Credentials {
    Credentials::new(GENERATED, GENERATED)
}

fn validation_problem(error: validate::ValidationError) -> FieldProblem {
    match error {
        validate::ValidationError::Field { path, message } => FieldProblem {
            path: Some(path),
            message,
        },
        other => FieldProblem {
            path: None,
            message: other.to_string(),
        },
    }
}

fn check_unique(planned: &[Planned], problems: &mut Vec<Problem>) {
    let mut seen = BTreeSet::new();
    for p in planned {
        let key = format!("{}/{}", p.tenant.namespace, p.tenant.name);
        if !seen.insert(key.clone()) {
            problems.push(Problem {
                source: "input".into(),
                document: None,
                tenant: Some(key),
                path: Some("metadata.name".into()),
                message: "the same tenant is defined more than once".into(),
            });
        }
    }
}

fn tenant_name(document: &Value, namespace: &str) -> Option<String> {
    let name = document.pointer("/metadata/name")?.as_str()?;
    let namespace = document
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(namespace);
    Some(format!("{namespace}/{name}"))
}

fn source_name(file: &Path) -> String {
    if file == Path::new("-") {
        "<stdin>".into()
    } else {
        file.display().to_string()
    }
}

fn read(file: &Path) -> std::io::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
    }
}
