//! `--about`: what the tap is, what it can do and its settings, in text, JSON or Markdown.

use serde_json::{json, Value};

use crate::cli::AboutFormat;
use crate::config::Config;

pub const CAPABILITIES: &[&str] = &["catalog", "discover", "state", "about", "test"];

pub fn about() -> Value {
    json!({
        "name": "tap-harvest",
        "description": env!("CARGO_PKG_DESCRIPTION"),
        "version": env!("CARGO_PKG_VERSION"),
        "sdk_version": null,
        "supported_python_versions": null,
        "capabilities": CAPABILITIES,
        "settings": Config::settings_schema(),
    })
}

pub fn render(format: AboutFormat) -> String {
    let info = about();
    let settings = info["settings"]["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required: Vec<&str> = info["settings"]["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
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
                    "  - Name: {name}\n    Type: {}\n    Environment Variable: TAP_HARVEST_{}\n",
                    s["type"].as_str().unwrap_or("string"),
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
            for (name, s) in &settings {
                let description = s["description"]
                    .as_str()
                    .unwrap_or("")
                    .replace('\n', " ")
                    .replace('|', "\\|");
                let default = s
                    .get("default")
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "None".into());
                let req = if required.contains(&name.as_str()) {
                    "True"
                } else {
                    "False"
                };
                out.push_str(&format!("| {name} | {req} | {default} | {description} |\n"));
            }
            out.push_str("\nA full list of supported settings and capabilities is available by running: `tap-harvest --about`\n");
            out
        }
    }
}
