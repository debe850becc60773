//! `--about`: what the tap is, what it can do and its settings, in text, JSON or Markdown. The
//! settings (types, defaults, required-ness) come from [`crate::settings::schema`], and the
//! text and Markdown forms are rendered from that JSON Schema.

use serde_json::{json, Value};

use crate::cli::AboutFormat;
use crate::settings::{self, default_label, required_label};

pub const CAPABILITIES: &[&str] = &[
    "catalog",
    "discover",
    "state",
    "about",
    "test",
    "activate-version",
    "stream-maps",
    "schema-flattening",
];

pub fn about() -> Value {
    json!({
        "name": "tap-harvest",
        "description": env!("CARGO_PKG_DESCRIPTION"),
        "version": env!("CARGO_PKG_VERSION"),
        "sdk_version": null,
        "supported_python_versions": null,
        "capabilities": CAPABILITIES,
        "settings": settings::schema(),
    })
}

pub fn render(format: AboutFormat) -> String {
    let info = about();
    let schema = &info["settings"];
    let settings = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    match format {
        AboutFormat::Json => serde_json::to_string_pretty(&info).unwrap_or_default(),
        AboutFormat::Text => {
            let mut out = format!(
                "Name: tap-harvest\nDescription: {}\nVersion: {}\nCapabilities:\n",
                info["description"].as_str().unwrap_or(""),
                info["version"].as_str().unwrap_or("")
            );
            for c in CAPABILITIES {
                out.push_str(&format!("  - {c}\n"));
            }
            out.push_str("Settings:\n");
            for (name, s) in &settings {
                out.push_str(&format!(
                    "  - Name: {name}\n    Type: {}\n    Required: {}\n",
                    s["type"].as_str().unwrap_or("string"),
                    required_label(schema, name)
                ));
                if s.get("default").is_some() {
                    out.push_str(&format!("    Default: {}\n", default_label(s)));
                }
                out.push_str(&format!(
                    "    Environment Variable: TAP_HARVEST_{}\n",
                    name.to_uppercase()
                ));
            }
            out.trim_end().to_string()
        }
        AboutFormat::Markdown => {
            let mut out = format!(
                "# `tap-harvest`\n\n{}\n\n## Capabilities\n\n",
                info["description"].as_str().unwrap_or("")
            );
            for c in CAPABILITIES {
                out.push_str(&format!("* `{c}`\n"));
            }
            out.push_str("\n## Settings\n\n| Setting | Required | Default | Description |\n|:--------|:--------:|:-------:|:------------|\n");
            let cell = |s: &str| s.replace('\n', " ").replace('|', "\\|");
            for (name, s) in &settings {
                let description = cell(s["description"].as_str().unwrap_or(""));
                let default = cell(&default_label(s));
                let req = required_label(schema, name);
                out.push_str(&format!("| {name} | {req} | {default} | {description} |\n"));
            }
            out.push_str("\nA full list of supported settings and capabilities is available by running: `tap-harvest --about`\n");
            out
        }
    }
}
