//! `crm-operator plan` as a user runs it: the binary, real files, exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace().join("examples"))
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn plan(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crm-operator"))
        .arg("plan")
        .args(args)
        .current_dir(workspace())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crm-operator runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("crm-operator finishes")
}

/// `count` small tenants as one multi-document stream, as `kustomize build`
/// renders a GitOps repository of customers.
fn fleet(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "apiVersion: crm.tenancy.dev/v1alpha1\nkind: CrmTenant\n\
                 metadata:\n  name: t{i:05}\n  namespace: fleet-{}\n\
                 spec:\n  load:\n    activeUsers: {}\n",
                i % 20,
                10 + i % 50
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A file of its own for one test, under Cargo's scratch directory.
fn scratch_file(name: &str, contents: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).expect("write scratch file");
    path
}

fn tenant_names(output: &Output) -> Vec<String> {
    json_lines(output)
        .iter()
        .map(|t| t["tenant"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(output: &Output) -> Vec<Value> {
    text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect()
}

#[test]
fn every_example_plans_and_matches_its_golden_file() {
    for example in examples() {
        let name = example
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let output = plan(&[&format!("examples/{name}")], None);
        assert!(output.status.success(), "{name}: {}", text(&output.stderr));
        let golden = workspace().join("operator/tests/golden").join(&name);
        let actual = text(&output.stdout);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &actual).expect("write golden file");
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "{} missing: run UPDATE_GOLDEN=1 cargo test -p crm-operator --test plan",
                golden.display()
            )
        });
        similar_asserts::assert_eq!(expected, actual, "{name} drifted from its golden file");
    }
}

#[test]
fn plan_output_is_itself_valid_multi_document_yaml() {
    let output = plan(&["examples/growth-managed.yaml"], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text(&output.stdout)).expect("valid YAML");
    let kinds: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    for kind in [
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "StatefulSet",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[test]
fn worked_example_a_through_the_json_output() {
    let output = plan(&["-o", "json", "examples/growth-managed.yaml"], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let tenants = json_lines(&output);
    assert_eq!(tenants.len(), 1);
    let t = &tenants[0];
    assert_eq!(t["tenant"], "northwind");
    assert_eq!(t["namespace"], "crm-tenants");
    let s = &t["sizing"];
    assert_eq!(s["perReplicaThroughput"], 250.0);
    assert_eq!(s["replicas"], 2);
    assert_eq!(s["minReplicas"], 2);
    assert_eq!(s["maxReplicas"], 3);
    assert_eq!(s["targetCpuUtilization"], 70);
    assert_eq!(s["predictedP95LatencyMs"], 34.96);
    assert_eq!(s["predictedUtilization"], 0.6);
    let hpa = t["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["kind"] == "HorizontalPodAutoscaler")
        .expect("an HPA");
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(hpa["spec"]["maxReplicas"], 3);
}

#[test]
fn worked_example_b_through_the_json_output() {
    let output = plan(&["-o", "json", "examples/enterprise-shared.yaml"], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = &json_lines(&output)[0]["sizing"];
    assert_eq!(s["peakRequestsPerSecond"], 1500.0);
    assert_eq!(s["averageRequestsPerSecond"], 500.0);
    assert_eq!(s["replicas"], 9);
    assert_eq!(s["minReplicas"], 3);
    assert_eq!(s["maxReplicas"], 12);
}

#[test]
fn secrets_are_shown_as_placeholders_never_as_values() {
    let output = plan(&["-o", "json", "examples/growth-managed.yaml"], None);
    let t = &json_lines(&output)[0];
    let secrets: Vec<&Value> = t["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .collect();
    assert_eq!(
        secrets.len(),
        3,
        "the API key, the first administrator and the database credentials"
    );
    for secret in secrets {
        assert!(secret.get("data").is_none(), "{secret}");
        let data = secret["stringData"].as_object().expect("stringData");
        assert!(
            data.values()
                .any(|v| v.as_str().is_some_and(|v| v.contains("<generated>"))),
            "{secret}"
        );
    }
}

#[test]
fn several_files_and_stdin_plan_together() {
    let stdin = std::fs::read_to_string(workspace().join("examples/starter-embedded.yaml"))
        .expect("example");
    let output = plan(
        &["-o", "json", "examples/growth-external.yaml", "-"],
        Some(&stdin),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let names: Vec<String> = json_lines(&output)
        .iter()
        .map(|t| t["tenant"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["initech", "corner-bakery"]);
}

#[test]
fn bad_input_exits_2_names_file_tenant_and_field_and_prints_no_plan() {
    let bad = "\
apiVersion: crm.tenancy.dev/v1alpha1
kind: CrmTenant
metadata: {name: acme}
spec:
  tier: Gold
  load: {}
";
    let output = plan(&["examples/growth-managed.yaml", "-"], Some(bad));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        output.stdout.is_empty(),
        "nothing printed as if valid: {}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("<stdin> (document 1): tenant default/acme: spec.tier:"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "schema errors first, one line per problem: {stderr}"
    );
}

#[test]
fn malformed_yaml_and_missing_files_exit_2_with_one_line_each() {
    let output = plan(&["does-not-exist.yaml", "-"], Some("spec: [unclosed"));
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("does-not-exist.yaml: cannot read"),
        "{stderr}"
    );
    assert!(stderr.contains("<stdin>: malformed YAML"), "{stderr}");
}

#[test]
fn a_file_without_tenants_is_an_error_not_an_empty_plan() {
    let output = plan(&["-"], Some("# nothing here\n"));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("no CrmTenant documents found"));
}

#[test]
fn the_same_tenant_twice_is_refused() {
    let example =
        std::fs::read_to_string(workspace().join("examples/growth-managed.yaml")).expect("example");
    let output = plan(&["examples/growth-managed.yaml", "-"], Some(&example));
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("<stdin> (document 1): tenant crm-tenants/northwind: metadata.name")
            && stderr.contains("first in examples/growth-managed.yaml, document 1"),
        "{stderr}"
    );
}

// The YAML reader's default budget stopped `plan` at 1,024 documents; twice
// that many pass (a debug build spends about 5 ms on each, so the fleet's
// 5,000 belong to a release build: see bench/README.md).
#[test]
fn two_thousand_tenants_in_one_file_plan() {
    let file = scratch_file("fleet-2000.yaml", &fleet(2000));
    let output = plan(&["-o", "json", file.to_str().expect("UTF-8 path")], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let names = tenant_names(&output);
    assert_eq!(names.len(), 2000);
    assert_eq!(
        (names[0].as_str(), names[1999].as_str()),
        ("t00000", "t01999")
    );
}

// Past the old limit on standard input too, as `kustomize build | plan -`
// sends it; fewer tenants than above, since each costs a few milliseconds in
// a debug build.
#[test]
fn a_fleet_streams_in_on_standard_input() {
    let output = plan(&["-o", "json", "-"], Some(&fleet(1100)));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let names = tenant_names(&output);
    assert_eq!(names.len(), 1100);
    assert_eq!(names[1024], "t01024", "past the old limit, in order");
}

#[test]
fn a_problem_deep_in_a_stream_names_its_document() {
    let bad = |name: &str| {
        fleet(1)
            .replace("t00000", name)
            .replace("activeUsers: 10", "activeUsers: -1")
    };
    // A bad first document also keeps the run cheap: nothing is rendered
    // once a problem is known.
    let stream = format!(
        "{}---\n{}---\n# an empty document is not counted\n---\n{}",
        bad("first"),
        fleet(1100),
        bad("last")
    );
    let output = plan(&["-"], Some(&stream));
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    for expected in [
        "<stdin> (document 1): tenant fleet-0/first: spec.load.activeUsers",
        "<stdin> (document 1102): tenant fleet-0/last: spec.load.activeUsers",
    ] {
        assert!(stderr.contains(expected), "{expected} missing: {stderr}");
    }
}

#[test]
fn input_over_the_size_limit_is_refused_naming_the_flag_that_raises_it() {
    let big = format!("{}# {}\n", fleet(1), "x".repeat(1_200_000));
    let file = scratch_file("over-one-mib.yaml", &big);
    let path = file.to_str().expect("UTF-8 path");
    let output = plan(&["--max-input-mib", "1", path], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("larger than 1 MiB") && stderr.contains("--max-input-mib"),
        "{stderr}"
    );
    let raised = plan(&["--max-input-mib", "2", path], None);
    assert!(raised.status.success(), "{}", text(&raised.stderr));
}

#[test]
fn a_document_beyond_the_readers_per_document_limit_is_named_as_such() {
    let huge = format!("{}  extra: [{}]\n", fleet(1), vec!["0"; 300_000].join(","));
    let file = scratch_file("huge-document.yaml", &huge);
    let output = plan(&[file.to_str().expect("UTF-8 path")], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("per-document limit of 250000 nodes"),
        "{stderr}"
    );
}

#[test]
fn crd_subcommand_prints_the_checked_in_crd() {
    let output = Command::new(env!("CARGO_BIN_EXE_crm-operator"))
        .arg("crd")
        .output()
        .expect("crm-operator runs");
    assert!(output.status.success());
    let checked_in = std::fs::read_to_string(workspace().join("crds/crmtenant.yaml")).expect("CRD");
    assert_eq!(text(&output.stdout), checked_in);
}

#[test]
fn a_tenant_without_a_database_mode_gets_its_tiers_and_plan_prints_it() {
    let manifest = "apiVersion: crm.tenancy.dev/v1alpha1\nkind: CrmTenant\n\
                    metadata:\n  name: big\n  namespace: crm\n\
                    spec:\n  tier: Enterprise\n  load:\n    peakRequestsPerSecond: 2000\n\
                    ---\n\
                    apiVersion: crm.tenancy.dev/v1alpha1\nkind: CrmTenant\n\
                    metadata:\n  name: small\n  namespace: crm\n\
                    spec:\n  load:\n    activeUsers: 20\n";
    let out = plan(&["-"], Some(manifest));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# crm/big: tier Enterprise, database Managed"),
        "{text}"
    );
    assert!(
        text.contains("# crm/small: tier Starter, database Embedded"),
        "{text}"
    );
    assert!(text.contains("name: big-postgres"), "{text}");
    let out = plan(&["-o", "json", "-"], Some(manifest));
    let big: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("a line"),
    )
    .expect("json");
    assert_eq!(big["databaseMode"], "Managed", "{big}");
    assert!(big["sizing"]["replicas"].as_i64() > Some(1), "{big}");
}
