//! The top-level modules of `operator/src` and `crm-server/src` depend on
//! each other one way only: a module may use the modules below it, never one
//! that (directly or not) uses it back. A cycle fails this test, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules of a crate's `src` and the files of each.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let entries = std::fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if matches!(stem, "lib" | "main") {
            continue;
        }
        let files = modules.entry(stem.to_owned()).or_default();
        if path.is_dir() {
            sources(&path, files);
        } else {
            files.push(path);
        }
    }
    modules
}

/// Module → the other top-level modules its code names as `crate::x`
/// (comments left out).
fn graph(src: &Path) -> Graph {
    let modules = modules(src);
    let names: BTreeSet<&str> = modules.keys().map(String::as_str).collect();
    let mut graph = Graph::new();
    for (module, files) in &modules {
        let deps = graph.entry(module.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(file).expect("readable source");
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            for used in used_modules(&code.join("\n")) {
                if used != *module && names.contains(used.as_str()) {
                    deps.insert(used);
                }
            }
        }
    }
    graph
}

/// `x` of every `crate::x` and of every top-level name in
/// `crate::{x, y::{z, w}}`.
fn used_modules(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.push(ident(rest));
            continue;
        };
        // The top-level items of the group: split on commas at depth 0.
        let (mut depth, mut item_start) = (0usize, 0usize);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    found.push(ident(&group[item_start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    found.push(ident(&group[item_start..i]));
                    item_start = i + 1;
                }
                _ => {}
            }
        }
    }
    found
}

/// A cycle through `start`, if any: the path back to it.
fn cycle_through(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

fn cycles(crate_dir: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src");
    let graph = graph(&src);
    assert!(
        graph.len() > 5,
        "{}: modules found: {graph:?}",
        src.display()
    );
    graph
        .keys()
        .filter_map(|m| cycle_through(&graph, m))
        .map(|c| c.join(" → "))
        .collect()
}

#[test]
fn the_operators_modules_depend_on_each_other_one_way() {
    let found = cycles("operator");
    assert!(
        found.is_empty(),
        "cycles between modules of operator/src:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_crm_servers_modules_depend_on_each_other_one_way() {
    let found = cycles("crm-server");
    assert!(
        found.is_empty(),
        "cycles between modules of crm-server/src:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_cycle_is_found_and_named() {
    let graph: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        cycle_through(&graph, "a").map(|c| c.join(" → ")),
        Some("a → b → c → a".to_owned())
    );
    assert_eq!(cycle_through(&graph, "d"), None);
    assert_eq!(
        used_modules(
            "use crate::{apply::{self, Report},\n    build};\nlet x = crate::model::size();"
        ),
        ["apply", "build", "model"]
    );
}
