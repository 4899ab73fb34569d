//! The dependency direction of docs/design.md, 'Overview': shells → `wiring` → `app` → `ports` →
//! `domain`. A module naming a layer it must not know fails here (`bash scripts/imports` prints
//! the whole graph).

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The `crate::X` modules `layer` names in code (comments aside).
fn named_by(layer: &str) -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let root = src.join(layer);
    let mut files = if root.is_dir() {
        sources(&root)
    } else {
        Vec::new()
    };
    let file = src.join(format!("{layer}.rs"));
    if file.is_file() {
        files.push(file);
    }
    assert!(!files.is_empty(), "no module {layer}");
    let mut named = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for part in line.split("crate::").skip(1) {
                let module: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                named.push((f.display().to_string(), module));
            }
        }
    }
    named
}

fn assert_knows_only(layer: &str, allowed: &[&str]) {
    let wrong: Vec<_> = named_by(layer)
        .into_iter()
        .filter(|(_, m)| m != layer && !allowed.contains(&m.as_str()))
        .collect();
    assert!(wrong.is_empty(), "{layer} must not name these: {wrong:?}");
}

#[test]
fn the_core_names_nothing_outside_itself() {
    assert_knows_only("domain", &[]);
}

#[test]
fn the_application_knows_the_ports_never_the_adapters_or_the_shells() {
    assert_knows_only("app", &["domain", "ports", "error", "config", "inbound"]);
    assert_knows_only("ports", &["domain"]);
}

#[test]
fn only_the_composition_root_and_the_shells_know_the_adapters() {
    assert_knows_only(
        "wiring",
        &["adapters", "app", "config", "domain", "error", "ports"],
    );
    assert_knows_only("lambda", &["app", "domain", "error", "inbound", "ports"]);
    // The CLI builds a clock and a retry policy; everything else through `wiring`.
    let cli_to_lambda: Vec<_> = named_by("cli")
        .into_iter()
        .filter(|(_, m)| m == "lambda")
        .collect();
    assert!(
        cli_to_lambda.is_empty(),
        "the CLI must not import the Lambda shell: {cli_to_lambda:?}"
    );
}
