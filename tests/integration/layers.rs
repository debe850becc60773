//! The layering `src/lib.rs` describes is the real one: each module of the tap uses only the
//! modules below it, and so do the engine's parts. A `use crate::…` that reaches up (an import
//! circle in the making) fails here, naming the file and the module it reaches.

use std::path::Path;

use crate::util::{assert_checked, code_of};

/// The tap's top-level modules, from the bottom up (`src/lib.rs`, "The layers").
const TAP: [&str; 14] = [
    "util", "log", "streams", "state", "catalog", "conform", "output", "client", "engine",
    "settings", "config", "cli", "about", "app",
];

/// The engine's parts, from the bottom up; `engine/mod.rs` (the run) is above them all.
const ENGINE: [&str; 9] = [
    "config",
    "known",
    "presence",
    "tally",
    "plan",
    "signs",
    "progress",
    "deletions",
    "read",
];

/// Every `crate::<module>` (or, in `engine/`, `super::<part>`) a Rust file's code names.
fn uses<'a>(code: &str, prefix: &str, among: &[&'a str]) -> Vec<&'a str> {
    among
        .iter()
        .filter(|m| {
            code.contains(&format!("{prefix}{m}::"))
                || code.contains(&format!("{prefix}{{{m}"))
                || code.contains(&format!("{prefix}{m};"))
                || code.contains(&format!("{prefix}{m},"))
        })
        .copied()
        .collect()
}

/// The Rust files under `dir`, with the module (or part) each belongs to.
fn files_of(dir: &Path, module: &str, out: &mut Vec<(String, std::path::PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_of(&path, module, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((module.to_string(), path));
        }
    }
}

#[test]
fn each_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for (i, module) in TAP.iter().enumerate() {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            files_of(&dir, module, &mut files);
        } else {
            files.push((module.to_string(), src.join(format!("{module}.rs"))));
        }
        for (_, path) in files {
            let code = code_of(&path);
            for used in uses(&code, "crate::", &TAP) {
                let at = TAP.iter().position(|m| *m == used).unwrap();
                assert!(
                    at < i || used == *module,
                    "{}: module {module} uses {used}, which is not below it (src/lib.rs, \"The layers\")",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert_checked(checked, "files of the tap's modules");
    let engine = src.join("engine");
    for (i, part) in ENGINE.iter().enumerate() {
        let path = engine.join(format!("{part}.rs"));
        let code = code_of(&path);
        for used in uses(&code, "super::", &ENGINE) {
            let at = ENGINE.iter().position(|m| *m == used).unwrap();
            assert!(
                at < i,
                "{}: the engine's {part} uses {used}, which is not below it",
                path.display()
            );
        }
    }
}
