//! Command-line interface, as Singer runners (Meltano, singer-check-tap) invoke a tap.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AboutFormat {
    Text,
    Json,
    Markdown,
}

/// Singer tap for Harvest (REST API v2).
#[derive(Debug, Parser)]
#[command(name = "tap-harvest", version, about, long_about = None)]
pub struct Args {
    /// Config file (JSON).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the catalog of every stream and exit (no API call).
    #[arg(short, long)]
    pub discover: bool,

    /// Catalog file: which streams and properties to sync.
    #[arg(long, value_name = "FILE", alias = "properties", short_alias = 'p')]
    pub catalog: Option<PathBuf>,

    /// State file from a previous run: where to resume.
    #[arg(short, long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Print the tap's capabilities and settings, then exit (no config needed).
    #[arg(long)]
    pub about: bool,

    /// Format of --about.
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        default_value = "text",
        requires = "about"
    )]
    pub format: AboutFormat,

    /// Check the credentials with one request, or with `--test=schema` print the SCHEMA messages.
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "all", require_equals = false)]
    pub test: Option<String>,
}
