//! `crm-operator plan`: the offline main job. Manifests in, sizing and the
//! objects the operator would create out; nothing touches a cluster.
//!
//! Documents are read, checked, built and rendered one at a time, so a fleet
//! rendered into one stream costs the memory of the output and a name per
//! tenant, not of the input as well. Output is still all or nothing: it is
//! kept until every document has been checked.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_saphyr::budget::BudgetBreach;

use super::OutputFormat;
use super::admission::{FieldProblem, Problem, admit_document};
use super::render::{self, GENERATED, Planned};
use crate::build::{self, Credentials};
use crate::validate;

/// The most `plan` reads from one input unless told otherwise, in MiB.
pub const DEFAULT_MAX_INPUT_MIB: u64 = 1024;

/// Why `plan` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The input has problems; each names its file, tenant and field.
    #[error("{} problem(s) in the input", .0.len())]
    Invalid(Vec<Problem>),
}

/// How `plan` reads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The most bytes read from one file or from standard input, in MiB.
    pub max_input_mib: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_input_mib: DEFAULT_MAX_INPUT_MIB,
        }
    }
}

impl ReadLimits {
    fn options(self) -> serde_saphyr::Options {
        let bytes = self.max_input_mib.saturating_mul(1 << 20);
        // The reader's other limits (nodes, events, depth, scalar bytes) count
        // per document when documents are streamed, and no CrmTenant comes
        // near them; only the size of the whole input needs to fit a fleet.
        serde_saphyr::options! {
            budget: serde_saphyr::budget! {
                max_reader_input_bytes: Some(usize::try_from(bytes).unwrap_or(usize::MAX)),
            },
        }
    }
}

/// Plans every tenant in `files`; all or nothing.
pub fn plan(
    files: &[PathBuf],
    namespace: &str,
    format: OutputFormat,
    limits: ReadLimits,
) -> Result<String, PlanError> {
    let mut planner = Planner {
        namespace,
        format,
        limits,
        output: String::new(),
        sources: Vec::new(),
        seen: HashMap::new(),
        problems: Vec::new(),
    };
    for file in files {
        planner.plan_file(file);
    }
    let Planner {
        output,
        seen,
        mut problems,
        ..
    } = planner;
    if seen.is_empty() && problems.is_empty() {
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
    if problems.is_empty() {
        Ok(output)
    } else {
        Err(PlanError::Invalid(problems))
    }
}

/// The state of one `plan` run as documents stream through it.
struct Planner<'a> {
    namespace: &'a str,
    format: OutputFormat,
    limits: ReadLimits,
    /// Everything printed so far; dropped at the first problem.
    output: String,
    /// Input names, indexed by `seen`.
    sources: Vec<String>,
    /// `namespace/name` → where the tenant was first defined (source index,
    /// document), to refuse a second definition and name the first.
    seen: HashMap<String, (usize, usize)>,
    problems: Vec<Problem>,
}

impl Planner<'_> {
    fn plan_file(&mut self, file: &Path) {
        let source = self.sources.len();
        self.sources.push(source_name(file));
        if file == Path::new("-") {
            self.plan_stream(source, &mut std::io::stdin().lock());
        } else {
            match File::open(file) {
                Ok(mut reader) => self.plan_stream(source, &mut reader),
                Err(e) => self.whole_input_problem(source, format!("cannot read: {e}")),
            }
        }
    }

    fn plan_stream(&mut self, source: usize, reader: &mut impl Read) {
        let documents = serde_saphyr::read_with_options::<_, Value>(reader, self.limits.options());
        // The reader skips empty documents, as `from_multiple` does, so the
        // numbers count the documents that hold something.
        for (index, document) in documents.enumerate() {
            match document {
                Ok(document) => self.plan_document(source, index + 1, document),
                Err(e) => {
                    let message = read_error(&e, self.limits);
                    self.whole_input_problem(source, message);
                }
            }
        }
    }

    fn plan_document(&mut self, source: usize, document: usize, value: Value) {
        let tenant = tenant_name(&value, self.namespace);
        let admitted = admit_document(value, self.namespace)
            .and_then(|t| validate::validate(&t).map_err(|e| vec![validation_problem(e)]));
        let validated = match admitted {
            Ok(validated) => validated,
            Err(found) => {
                for p in found {
                    self.problem(source, document, tenant.clone(), p);
                }
                return;
            }
        };
        let key = format!("{}/{}", validated.namespace, validated.name);
        if let Some(&(first_source, first_document)) = self.seen.get(&key) {
            let message = format!(
                "the same tenant is defined more than once (first in {}, document {first_document})",
                self.sources[first_source]
            );
            let path = Some("metadata.name".to_owned());
            return self.problem(source, document, Some(key), FieldProblem { path, message });
        }
        self.seen.insert(key, (source, document));
        if self.problems.is_empty() {
            let planned = Planned {
                desired: build::build(&validated, &placeholder_credentials()),
                tenant: validated,
            };
            match self.format {
                OutputFormat::Text => render::text(&mut self.output, &planned),
                OutputFormat::Json => render::json_line(&mut self.output, &planned),
            }
        }
    }

    fn problem(&mut self, source: usize, document: usize, tenant: Option<String>, p: FieldProblem) {
        self.push(Problem {
            source: self.sources[source].clone(),
            document: Some(document),
            tenant,
            path: p.path,
            message: p.message,
        });
    }

    fn whole_input_problem(&mut self, source: usize, message: String) {
        self.push(Problem {
            source: self.sources[source].clone(),
            document: None,
            tenant: None,
            path: None,
            message,
        });
    }

    fn push(&mut self, problem: Problem) {
        // Nothing will be printed now; the memory is better given back.
        self.output = String::new();
        self.problems.push(problem);
    }
}

/// What went wrong reading the input, and, for a limit, which one and how to
/// raise it.
fn read_error(error: &serde_saphyr::Error, limits: ReadLimits) -> String {
    let too_large = || {
        format!(
            "larger than {} MiB, the most `plan` reads from one input; \
             raise it with --max-input-mib, or split the input",
            limits.max_input_mib
        )
    };
    match error.without_snippet() {
        serde_saphyr::Error::IOError { cause }
            if cause.kind() == std::io::ErrorKind::FileTooLarge =>
        {
            too_large()
        }
        serde_saphyr::Error::IOError { cause } => format!("cannot read: {cause}"),
        serde_saphyr::Error::Budget {
            breach: BudgetBreach::InputBytes { .. },
            ..
        } => too_large(),
        serde_saphyr::Error::Budget { breach, location } => format!(
            "malformed YAML: line {} column {}: one document exceeds the YAML reader's \
             per-document limit of {}; the limit is fixed, since a CrmTenant needs a \
             small fraction of it",
            location.line(),
            location.column(),
            breached_limit(breach)
        ),
        other => format!("malformed YAML: {other}"),
    }
}

/// The per-document limit a breach hit, in words, with its value.
fn breached_limit(breach: &BudgetBreach) -> String {
    let budget = serde_saphyr::Budget::default();
    match breach {
        BudgetBreach::Events { .. } => format!("{} parser events", budget.max_events),
        BudgetBreach::Nodes { .. } => format!("{} nodes", budget.max_nodes),
        BudgetBreach::Depth { .. } => format!("{} levels of nesting", budget.max_depth),
        BudgetBreach::ScalarBytes { .. } => {
            format!("{} bytes of scalar text", budget.max_total_scalar_bytes)
        }
        BudgetBreach::Aliases { .. } => format!("{} aliases", budget.max_aliases),
        BudgetBreach::Anchors { .. } => format!("{} anchors", budget.max_anchors),
        other => format!("{other:?}"),
    }
}

fn placeholder_credentials() -> Credentials {
    Credentials::new(GENERATED, GENERATED).with_admin_password(GENERATED)
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
