//! `harvest-sim`: start the simulator with a generated account.
//!
//! Prints exactly one JSON line to stdout once listening (`base_url`, `auth_url`, `control_url`,
//! `account_id`, `access_token`, `accounts`), then logs only to stderr. Stops on SIGINT/SIGTERM.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use harvest_sim::{Latency, RateLimit, SimConfig, Size};

#[derive(Parser, Debug)]
#[command(
    name = "harvest-sim",
    version,
    about = "A local simulator of the Harvest REST API v2"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Account size: tiny, small, medium or large.
    #[arg(long, default_value = "small")]
    size: Size,
    /// Generator seed (of the first account; account k uses SEED + k - 1).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Harvest accounts the tokens reach, in all: 1234567, 1234568, ... each with its own
    /// name and data of the same size.
    #[arg(long, default_value_t = 1, value_parser = parse_accounts)]
    accounts: usize,
    /// General rate limit per token, as REQUESTS/SECONDS.
    #[arg(long, default_value = "100/15", value_parser = parse_limit)]
    rate_limit: RateLimit,
    /// Reports API rate limit per token, as REQUESTS/SECONDS.
    #[arg(long, default_value = "100/900", value_parser = parse_limit)]
    reports_rate_limit: RateLimit,
    /// Disable both rate limits.
    #[arg(long)]
    no_rate_limit: bool,
    /// Lifetime of OAuth access tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl: u64,
    /// Turn a company feature off (invoice, estimate, expense); repeatable.
    #[arg(long = "disable-feature")]
    disable_feature: Vec<String>,
    /// Fixed latency added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Random extra latency (uniform 0..=N ms).
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Also write a tap config JSON pointing at the simulator to this path.
    #[arg(long)]
    write_config: Option<std::path::PathBuf>,
}

fn parse_accounts(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of accounts in 1..=1000, got {s:?}"
        )),
    }
}

fn parse_limit(s: &str) -> Result<RateLimit, String> {
    let (n, secs) = s
        .split_once('/')
        .ok_or_else(|| format!("expected REQUESTS/SECONDS like 100/15, got {s:?}"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("bad request count in {s:?}"))?;
    let secs: f64 = secs
        .trim()
        .parse()
        .map_err(|_| format!("bad seconds in {s:?}"))?;
    if secs <= 0.0 || !secs.is_finite() {
        return Err(format!("window must be positive in {s:?}"));
    }
    Ok(RateLimit::new(n, Duration::from_secs_f64(secs)))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    eprintln!("harvest-sim: shutting down");
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = SimConfig {
        seed: args.seed,
        size: args.size,
        accounts: args.accounts,
        rate_limit: Some(args.rate_limit),
        reports_rate_limit: Some(args.reports_rate_limit),
        token_ttl: Duration::from_secs(args.token_ttl),
        addr: SocketAddr::new(args.host, args.port),
        ..SimConfig::default()
    };
    if args.no_rate_limit {
        config.rate_limit = None;
        config.reports_rate_limit = None;
    }
    for f in &args.disable_feature {
        match f.as_str() {
            "invoice" | "invoices" => config.features.invoice = false,
            "estimate" | "estimates" => config.features.estimate = false,
            "expense" | "expenses" => config.features.expense = false,
            other => anyhow::bail!("unknown feature {other:?} (invoice, estimate, expense)"),
        }
    }
    if args.latency_ms > 0 || args.jitter_ms > 0 {
        config.latency = Some(Latency {
            fixed: Duration::from_millis(args.latency_ms),
            jitter: Duration::from_millis(args.jitter_ms),
            path_prefix: String::new(),
        });
    }

    let t0 = Instant::now();
    let state = Arc::new(harvest_sim::server::AppState::new(config.clone()));
    let gen_time = t0.elapsed();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        state.set_addr(addr);
        let base_url = format!("http://{addr}/v2");
        let auth_url = format!("http://{addr}/id/api/v2");
        let control_url = format!("http://{addr}/__control");
        let ids: Vec<String> = state
            .accounts()
            .iter()
            .map(|a| a.spec.id.to_string())
            .collect();
        let line = serde_json::json!({
            "base_url": base_url,
            "auth_url": auth_url,
            "control_url": control_url,
            "account_id": harvest_sim::ACCOUNT_ID,
            "access_token": harvest_sim::PAT_ADMIN,
            "accounts": ids,
        });
        if let Some(path) = &args.write_config {
            let cfg = serde_json::json!({
                "access_token": harvest_sim::PAT_ADMIN,
                "account_id": harvest_sim::ACCOUNT_ID,
                "start_date": "2019-01-01T00:00:00Z",
                "base_url": base_url,
                "auth_url": auth_url,
                "user_agent": harvest_sim::QUICKSTART_USER_AGENT,
            });
            std::fs::write(path, serde_json::to_string_pretty(&cfg)? + "\n")?;
        }
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        let n = state.accounts().len();
        eprintln!(
            "harvest-sim: {n} {:?} account{} (seed {}) generated in {:.2?}; listening on {addr}",
            config.size,
            if n == 1 { "" } else { "s" },
            config.seed,
            gen_time
        );
        for i in 0..n {
            let st = state.clone();
            let counts = tokio::task::spawn_blocking(move || st.accounts()[i].counts()).await?;
            let a = &state.accounts()[i].spec;
            if n == 1 {
                eprintln!("harvest-sim: records {counts}");
            } else {
                eprintln!(
                    "harvest-sim: account {} ({}, seed {}): records {counts}",
                    a.id, a.name, a.seed
                );
            }
        }
        eprintln!(
            "harvest-sim: tokens {} / {} / {} (admin/manager/member), account{} {}",
            harvest_sim::PAT_ADMIN,
            harvest_sim::PAT_MANAGER,
            harvest_sim::PAT_MEMBER,
            if n == 1 { "" } else { "s" },
            ids.join(", ")
        );
        harvest_sim::server::serve(state, listener, shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    Ok(())
}
