//! CPU amounts written the way every Kubernetes manifest writes them.
//!
//! `cpu: 0.5`, `cpu: 2`, `cpu: "500m"` and `cpu: "1"` all mean what they mean
//! in a Pod. The value is kept as written, so a tenant read back shows what
//! its author applied, and is parsed by [`Cpu::cores`] when the operator
//! validates the tenant.
//!
//! A structural CRD schema cannot say "a number or a string" (the only union
//! it allows, `x-kubernetes-int-or-string`, refuses `0.5`), so the field is
//! stored as given and the operator reports a malformed value as a field
//! error on the tenant instead of the API server refusing it.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A CPU amount: a number of cores or a Kubernetes quantity string.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct Cpu(Value);

/// Why a value is not a CPU amount.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value} is not a CPU amount: {reason} (write cores as 0.5 or 2, or a quantity as \"500m\" or \"1.5\")"
)]
pub struct CpuError {
    /// The value as written.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Cpu {
    /// The amount in cores, when the value is a positive number or quantity.
    pub fn cores(&self) -> Result<f64, CpuError> {
        let error = |reason| CpuError {
            value: self.0.to_string(),
            reason,
        };
        let cores = match &self.0 {
            Value::Number(n) => n.as_f64().ok_or_else(|| error("not a finite number"))?,
            Value::String(s) => parse_quantity(s).map_err(error)?,
            _ => return Err(error("expected a number or a string")),
        };
        if cores.is_finite() && cores > 0.0 {
            Ok(cores)
        } else {
            Err(error("must be greater than zero"))
        }
    }
}

impl From<f64> for Cpu {
    fn from(cores: f64) -> Self {
        Cpu(serde_json::json!(cores))
    }
}

impl From<&str> for Cpu {
    fn from(quantity: &str) -> Self {
        Cpu(Value::String(quantity.to_owned()))
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Value::String(s) => f.write_str(s),
            other => write!(f, "{other}"),
        }
    }
}

impl JsonSchema for Cpu {
    fn schema_name() -> Cow<'static, str> {
        "Cpu".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// Parses a Kubernetes quantity (`<number><suffix>`, as `resource.Quantity`
/// reads it) into a plain value: `"500m"` is 0.5, `"2k"` is 2000, `"1Ki"` is
/// 1024, `"1e3"` is 1000.
fn parse_quantity(text: &str) -> Result<f64, &'static str> {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if unsigned.starts_with('-') {
        return Err("must be greater than zero");
    }
    let digits = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(digits);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err("expected a number before the unit");
    }
    let number: f64 = number
        .parse()
        .map_err(|_| "expected a number before the unit")?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..]
                .strip_prefix('+')
                .unwrap_or(&exponent[1..])
                .parse()
                .map_err(|_| "the exponent after e must be an integer")?;
            10f64.powi(power)
        }
        _ => return Err("unknown unit (use m for thousandths of a core)"),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cores(value: Value) -> Result<f64, CpuError> {
        serde_json::from_value::<Cpu>(value)
            .expect("any JSON value is a Cpu")
            .cores()
    }

    #[test]
    fn numbers_and_quantities_mean_what_they_mean_in_a_pod() {
        for (value, expected) in [
            (serde_json::json!(0.5), 0.5),
            (serde_json::json!(2), 2.0),
            (serde_json::json!("500m"), 0.5),
            (serde_json::json!("250m"), 0.25),
            (serde_json::json!("1"), 1.0),
            (serde_json::json!("1.5"), 1.5),
            (serde_json::json!(".5"), 0.5),
            (serde_json::json!("+2"), 2.0),
            (serde_json::json!("1e0"), 1.0),
            (serde_json::json!("5e-1"), 0.5),
            (serde_json::json!("100000u"), 0.1),
            (serde_json::json!("1k"), 1000.0),
        ] {
            let parsed = cores(value.clone()).expect("a CPU amount");
            assert!((parsed - expected).abs() < 1e-12, "{value}: {parsed}");
        }
    }

    #[test]
    fn malformed_or_non_positive_amounts_are_named() {
        for (value, reason) in [
            (serde_json::json!("0"), "must be greater than zero"),
            (serde_json::json!(0), "must be greater than zero"),
            (serde_json::json!(-1), "must be greater than zero"),
            (serde_json::json!("-500m"), "must be greater than zero"),
            (serde_json::json!("500x"), "unknown unit"),
            (serde_json::json!("m"), "expected a number"),
            (serde_json::json!("1.2.3"), "expected a number"),
            (serde_json::json!(""), "expected a number"),
            (serde_json::json!("1e"), "exponent"),
            (serde_json::json!(true), "expected a number or a string"),
            (
                serde_json::json!({"cores": 1}),
                "expected a number or a string",
            ),
        ] {
            let error = cores(value.clone()).expect_err("not a CPU amount");
            assert!(error.reason.contains(reason), "{value}: {error}");
            assert!(error.to_string().starts_with(&value.to_string()), "{error}");
        }
    }

    #[test]
    fn the_value_reads_back_as_written() {
        for text in [r#""500m""#, "0.5", "2"] {
            let cpu: Cpu = serde_json::from_str(text).expect("JSON");
            assert_eq!(serde_json::to_string(&cpu).expect("serialises"), text);
        }
        assert_eq!(Cpu::from("250m").to_string(), "250m");
        assert_eq!(Cpu::from(0.5).to_string(), "0.5");
    }
}
