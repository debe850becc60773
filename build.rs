//! Embeds every `schemas/<stream>.json` in the binary, so adding a stream's schema is adding a file.

use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("schemas");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("schemas/ directory")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    let mut out = String::from("/// (stream name, schema JSON text), sorted by name.\npub static SCHEMA_FILES: &[(&str, &str)] = &[\n");
    for name in &names {
        let file = dir.join(format!("{name}.json"));
        println!("cargo:rerun-if-changed={}", file.display());
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            file.display().to_string()
        ));
    }
    out.push_str("];\n");
    fs::write(
        Path::new(&env::var("OUT_DIR").unwrap()).join("schemas.rs"),
        out,
    )
    .unwrap();
}
