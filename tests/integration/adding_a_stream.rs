//! What adding a stream takes, counted, so that the README's "Adding a stream" stays true.
//!
//! The README says a stream is four things on the tap's side: its entry in `STREAMS`
//! (`src/streams/mod.rs`), its schema file `schemas/<stream>.json`, its row in the README's
//! stream table, and its entry in the regenerated `catalog.example.json`; everything else reads
//! the table. This test finds every place that names a stream and fails when a stream is named
//! anywhere else: a hand-kept list or a `match` on a stream's name in the engine, the client,
//! the ecosystem checks or the scripts would be one more step the README does not say.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tap_harvest::streams::STREAMS;

use crate::util::{assert_checked, code_of};

/// The steps of adding a stream the README names, each a place that names it.
const STEPS: [&str; 4] = [
    "src/streams/mod.rs",
    "schemas/<stream>.json",
    "README.md",
    "catalog.example.json",
];

/// The streams of singer-io's tap-harvest 3.1.1: a fixed list (that tap is no longer
/// developed), which the migration checks and the benchmark compare with. A stream named only
/// among these is no step of adding a new stream.
const SINGER_IO: [&str; 25] = [
    "clients",
    "contacts",
    "estimate_item_categories",
    "estimate_line_items",
    "estimate_messages",
    "estimates",
    "expense_categories",
    "expenses",
    "external_reference",
    "invoice_item_categories",
    "invoice_line_items",
    "invoice_messages",
    "invoice_payments",
    "invoices",
    "project_tasks",
    "project_users",
    "projects",
    "roles",
    "tasks",
    "time_entries",
    "time_entry_external_reference",
    "user_project_tasks",
    "user_projects",
    "user_roles",
    "users",
];

/// Code besides the table that may name streams, and why that is no step of adding one: each
/// may name only streams of singer-io's fixed list, which a new stream is not on.
const NAMED_ELSEWHERE: [(&str, &str); 4] = [
    (
        "scripts/meltanohub",
        "the example selection of the MeltanoHub definition",
    ),
    ("bench/bench.py", "the streams both taps are benchmarked on"),
    (
        "tests/ecosystem/check.py",
        "the streams the migration from singer-io loads",
    ),
    (
        "src/streams/derived.rs",
        "`external_reference`, the time entries' field the derived rows are made from",
    ),
];

/// The code a new stream could need an edit in: every source file of the tap and its crates,
/// the build script, the ecosystem checks, the benchmark, the scripts and the Meltano files;
/// not the tests (which may name any stream they test) nor the simulator (whose resources are
/// Harvest's, counted by its own tests).
fn code_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        root.join("build.rs"),
        root.join("meltano.yml"),
        root.join("pyproject.toml"),
    ];
    let dirs = [
        "src",
        "crates",
        "tests/ecosystem",
        "bench",
        "scripts",
        "meltanohub",
    ];
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| root.join(d)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if !name.starts_with('.') && name != "out" && name != "__pycache__" {
                    stack.push(path);
                }
            } else if !name.ends_with(".md") && !name.ends_with(".txt") && !is_test_file(&name) {
                files.push(path);
            }
        }
    }
    files
}

/// Whole files of unit tests (`src/fuzz_tests.rs`, a crate's `tests.rs`).
fn is_test_file(name: &str) -> bool {
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// Whether `code` names `stream` as a string: `"stream"` or `'stream'`.
fn names(code: &str, stream: &str) -> bool {
    code.contains(&format!("\"{stream}\"")) || code.contains(&format!("'{stream}'"))
}

#[test]
fn a_stream_is_its_declaration_its_schema_its_readme_row_and_its_catalog_entry() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let catalog = std::fs::read_to_string(root.join("catalog.example.json")).unwrap();
    let code: Vec<(String, String)> = code_files(root)
        .into_iter()
        .map(|p| {
            let shown = p.strip_prefix(root).unwrap().display().to_string();
            (shown, code_of(&p))
        })
        .collect();
    assert!(
        code.iter().any(|(p, _)| p == "src/streams/mod.rs") && code.len() > 20,
        "the code to search was not found: {} files",
        code.len()
    );
    let mut places: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for def in STREAMS {
        let found = places.entry(def.name).or_default();
        for (path, text) in &code {
            if names(text, def.name) {
                found.push(path.clone());
            }
        }
        if root.join(format!("schemas/{}.json", def.name)).is_file() {
            found.push("schemas/<stream>.json".into());
        }
        if readme.contains(&format!("| `{}` |", def.name)) {
            found.push("README.md".into());
        }
        if catalog.contains(&format!("\"tap_stream_id\": \"{}\"", def.name)) {
            found.push("catalog.example.json".into());
        }
    }
    let mut counted = 0;
    for (stream, found) in &places {
        for step in STEPS {
            assert!(
                found.iter().any(|f| f == step),
                "stream {stream}: {step} does not name it, though the README says adding a stream takes it"
            );
        }
        for place in found.iter().filter(|f| !STEPS.contains(&f.as_str())) {
            let allowed =
                SINGER_IO.contains(stream) && NAMED_ELSEWHERE.iter().any(|(f, _)| f == place);
            assert!(
                allowed,
                "stream {stream} is named in {place}: the code must take it from the stream table \
                 (tap_harvest::streams::STREAMS, or the catalog), or the README's \"Adding a stream\" \
                 must say that a new stream needs an edit there"
            );
        }
        counted += 1;
    }
    assert_eq!(counted, STREAMS.len());
    assert_checked(counted, "streams whose places were counted");
    // The table names each stream once: a new stream is one entry.
    for def in STREAMS {
        assert_eq!(
            STREAMS.iter().filter(|d| d.name == def.name).count(),
            1,
            "{} is declared more than once",
            def.name
        );
    }
}
