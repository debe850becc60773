//! The simulator's settings and the plain values of its library API: credentials, sizes, rate
//! limits, features, latency, faults and request statistics (a leaf: it uses no other module).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The id of the (first) Harvest account, as requests send it in `Harvest-Account-Id`.
pub const ACCOUNT_ID: &str = "1234567";
/// [`ACCOUNT_ID`] as a number: account `k` (1-based) of a simulator is `FIRST_ACCOUNT_ID + k - 1`
/// (see [`harvest_account_id`]).
pub const FIRST_ACCOUNT_ID: i64 = 1_234_567;
/// The Forecast account listed (first) by the accounts endpoint; not valid for `/v2`.
pub const FORECAST_ACCOUNT_ID: i64 = 7_654_321;
/// Name of the (first) Harvest account (and company).
pub const ACCOUNT_NAME: &str = "Acme Co";
/// Name of the Forecast account.
pub const FORECAST_ACCOUNT_NAME: &str = "Acme Forecast";
/// Personal access token of the administrator (never expires).
pub const PAT_ADMIN: &str = "sim-pat-admin";
/// Personal access token of the manager.
pub const PAT_MANAGER: &str = "sim-pat-manager";
/// Personal access token of the member.
pub const PAT_MEMBER: &str = "sim-pat-member";
/// OAuth application credentials.
pub const CLIENT_ID: &str = "sim-client-id";
pub const CLIENT_SECRET: &str = "sim-client-secret";
/// OAuth refresh tokens, one per role.
pub const REFRESH_ADMIN: &str = "sim-refresh-admin";
pub const REFRESH_MANAGER: &str = "sim-refresh-manager";
pub const REFRESH_MEMBER: &str = "sim-refresh-member";
/// The user agent `--write-config` puts in the tap config.
pub const QUICKSTART_USER_AGENT: &str = "tap-harvest quickstart (dev@example.com)";

/// How big the generated account is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// ~4 users, 3 clients, ~40 time entries: every stream non-empty, every odd value present.
    Tiny,
    /// ~25 users, 60 clients, 150 projects, 12,000 time entries, 2,200 invoices, 2,150 contacts.
    Small,
    /// ~200,000 time entries, everything scaled.
    Medium,
    /// ~1,000,000 time entries.
    Large,
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        match s.to_ascii_lowercase().as_str() {
            "tiny" => Ok(Size::Tiny),
            "small" => Ok(Size::Small),
            "medium" => Ok(Size::Medium),
            "large" => Ok(Size::Large),
            other => Err(format!("unknown size {other:?} (tiny|small|medium|large)")),
        }
    }
}

/// A sliding-window rate limit: at most `max_requests` in any `window`, per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub max_requests: u32,
    pub window: Duration,
}

impl RateLimit {
    /// Harvest's general limit: 100 requests per 15 seconds.
    pub const HARVEST_GENERAL: RateLimit = RateLimit {
        max_requests: 100,
        window: Duration::from_secs(15),
    };
    /// Harvest's Reports API limit: 100 requests per 15 minutes.
    pub const HARVEST_REPORTS: RateLimit = RateLimit {
        max_requests: 100,
        window: Duration::from_secs(900),
    };
    pub fn new(max_requests: u32, window: Duration) -> RateLimit {
        RateLimit {
            max_requests,
            window,
        }
    }
}

/// Company features that gate whole groups of endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    pub invoice: bool,
    pub estimate: bool,
    pub expense: bool,
}

impl Default for Features {
    fn default() -> Features {
        Features {
            invoice: true,
            estimate: true,
            expense: true,
        }
    }
}

/// Latency added to requests whose path starts with `path_prefix` ("" = all API/ID paths).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub fixed: Duration,
    pub jitter: Duration,
    pub path_prefix: String,
}

/// The id of Harvest account `k` (1-based) of a simulator: 1234567, 1234568, 1234569...
pub fn harvest_account_id(k: usize) -> i64 {
    FIRST_ACCOUNT_ID + k.max(1) as i64 - 1
}

/// Names and subdomains of the accounts after the first; later ones are "Acme Co {k}".
const EXTRA_ACCOUNTS: &[(&str, &str)] = &[
    ("Globex Studio", "globex"),
    ("Müller & Söhne GmbH", "muellersoehne"),
    ("Initech Consulting", "initech"),
];

/// One simulated Harvest account: every one is reached by every token, and picked per request
/// by `Harvest-Account-Id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarvestAccount {
    /// Its id ([`harvest_account_id`]).
    pub id: i64,
    /// Its name (and its company's name), as `/accounts` and `/v2/company` show it.
    pub name: String,
    /// Its company's subdomain (`https://{subdomain}.harvestapp.com`).
    pub subdomain: String,
    /// The seed its data is generated from: the config's seed + k - 1, so account `k` holds
    /// what a one-account simulator started with that seed would hold.
    pub seed: u64,
}

impl HarvestAccount {
    /// Account `k` (1-based) of a simulator whose first account has `seed`.
    pub fn nth(k: usize, seed: u64) -> HarvestAccount {
        let k = k.max(1);
        let (name, subdomain) = match k {
            1 => (ACCOUNT_NAME.to_string(), "acme".to_string()),
            _ => match EXTRA_ACCOUNTS.get(k - 2) {
                Some((name, sub)) => (name.to_string(), sub.to_string()),
                None => (format!("{ACCOUNT_NAME} {k}"), format!("acme{k}")),
            },
        };
        HarvestAccount {
            id: harvest_account_id(k),
            name,
            subdomain,
            seed: seed.wrapping_add(k as u64 - 1),
        }
    }
}

/// Simulator configuration.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed of the first account's data (account `k` uses `seed + k - 1`).
    pub seed: u64,
    /// The size of every account.
    pub size: Size,
    /// How many Harvest accounts the tokens reach, in all (0 counts as 1): the first is
    /// [`ACCOUNT_ID`], the others have their own ids, names and data (see
    /// [`SimConfig::harvest_accounts`]).
    pub accounts: usize,
    /// General limit per token; `None` disables it.
    pub rate_limit: Option<RateLimit>,
    /// Reports limit per token (`/v2/reports/*`, counted separately); `None` disables it.
    pub reports_rate_limit: Option<RateLimit>,
    /// Lifetime of OAuth access tokens (personal access tokens never expire).
    pub token_ttl: Duration,
    pub features: Features,
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Initial latency (also settable at run time).
    pub latency: Option<Latency>,
    /// Upper bound of the serialized-page cache of each account, in bytes.
    pub page_cache_bytes: usize,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            seed: 42,
            size: Size::Tiny,
            accounts: 1,
            rate_limit: Some(RateLimit::HARVEST_GENERAL),
            reports_rate_limit: Some(RateLimit::HARVEST_REPORTS),
            token_ttl: Duration::from_secs(3600),
            features: Features::default(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: None,
            page_cache_bytes: 512 * 1024 * 1024,
        }
    }
}

impl SimConfig {
    /// Defaults without any rate limit, for fast tests and benchmarks.
    pub fn fast(size: Size) -> SimConfig {
        SimConfig {
            size,
            rate_limit: None,
            reports_rate_limit: None,
            ..SimConfig::default()
        }
    }

    /// The same configuration with `n` Harvest accounts in all.
    pub fn with_accounts(self, n: usize) -> SimConfig {
        SimConfig {
            accounts: n,
            ..self
        }
    }

    /// The Harvest accounts, first [`ACCOUNT_ID`] ("Acme Co"), then 1234568 ("Globex
    /// Studio"), 1234569 ("Müller & Söhne GmbH"), 1234570 ("Initech Consulting"), then
    /// "Acme Co {k}".
    pub fn harvest_accounts(&self) -> Vec<HarvestAccount> {
        (1..=self.accounts.max(1))
            .map(|k| HarvestAccount::nth(k, self.seed))
            .collect()
    }
}

/// How a revoked account answers every data request (as when the token's user lost access
/// to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// 401 `invalid_token`, as Harvest answers an account the token does not reach.
    InvalidToken,
    /// 403 `{"message": "You do not have access to this account"}`.
    Forbidden,
}

impl Revocation {
    /// The HTTP status it answers with.
    pub fn status(self) -> u16 {
        match self {
            Revocation::InvalidToken => 401,
            Revocation::Forbidden => 403,
        }
    }
    /// The revocation answering with `status` (401 or 403).
    pub fn from_status(status: u16) -> Option<Revocation> {
        match status {
            401 => Some(Revocation::InvalidToken),
            403 => Some(Revocation::Forbidden),
            _ => None,
        }
    }
}

/// What kind of failure a fault injects.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Answer with this status (500, 502, 503...) and a small HTML body.
    Status(u16),
    /// Send the headers (with the full Content-Length) and part of the body, then drop the
    /// connection.
    CloseMidBody,
    /// Answer 200 with a complete HTTP response whose JSON body is cut short.
    TruncatedJson,
    /// Answer normally, after this delay (to exceed a client's timeout).
    Slow(Duration),
    /// Answer 429 with `Retry-After: retry_after`.
    Status429 { retry_after: u64 },
    /// Before answering, delete these records of `resource` (with Harvest's cascades): a
    /// deletion that lands between two page requests of a sync.
    Delete { resource: String, ids: Vec<i64> },
    /// Answer normally but with odd records, as a changed or sloppy API might: every
    /// top-level number of each record sent as a string ("12.5"), `created_at` missing, and
    /// two unexpected fields (one nested, both with non-ASCII text).
    OddData,
    /// Answer normally but with text serde_json cannot read as is, in every record: a lone
    /// UTF-16 surrogate escape at the start of each `name`, bytes that are not UTF-8 at the
    /// start of each `notes`, and an unknown field holding `1e400` (beyond `f64`).
    OddText,
}

/// Which matching requests a fault hits.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// The first N matching requests.
    FirstN(u32),
    /// Only the N-th matching request (1-based): the second page of a list, say.
    Nth(u32),
    /// This fraction of matching requests, drawn from a deterministic RNG.
    Fraction(f64),
}

/// A fault scoped to authenticated `/v2` requests whose path starts with `path_prefix`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub path_prefix: String,
    pub kind: FaultKind,
    pub trigger: Trigger,
}

/// Ids touched and created by a mutation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutateResult {
    pub updated: Vec<i64>,
    pub created: Vec<i64>,
}

/// Request counts since start or the last reset (control requests are not counted).
///
/// Status codes are string keys (`"200"`, `"429"`), as in the JSON of `GET /__control/requests`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    /// All API and ID requests answered.
    pub total: u64,
    /// Requests answered 429 (rate limited or injected).
    pub throttled: u64,
    /// Counts by status code (`"200"` → n).
    pub by_status: BTreeMap<String, u64>,
    /// Counts by route (`"GET /v2/invoices/{id}/messages"`), then status code (`"200"` → n).
    pub by_route: BTreeMap<String, BTreeMap<String, u64>>,
    /// The most `/v2` requests being answered at once (from arrival, through the latency, to
    /// the response's head).
    #[serde(default)]
    pub max_in_flight: u64,
    /// `/v2` requests naming a simulated Harvest account (revoked ones included), by account
    /// id (`"1234567"`), then status code (`"200"` → n).
    #[serde(default)]
    pub by_account: BTreeMap<String, BTreeMap<String, u64>>,
}

impl RequestStats {
    /// Requests to a route, any status.
    pub fn route(&self, route: &str) -> u64 {
        self.by_route
            .get(route)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }
    /// Requests to a route answered with `status`.
    pub fn route_status(&self, route: &str, status: u16) -> u64 {
        self.by_route
            .get(route)
            .and_then(|m| m.get(&status.to_string()))
            .copied()
            .unwrap_or(0)
    }
    /// `/v2` requests to an account, any status.
    pub fn account(&self, id: i64) -> u64 {
        self.by_account
            .get(&id.to_string())
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }
    /// `/v2` requests to an account answered with `status`.
    pub fn account_status(&self, id: i64, status: u16) -> u64 {
        self.by_account
            .get(&id.to_string())
            .and_then(|m| m.get(&status.to_string()))
            .copied()
            .unwrap_or(0)
    }
    /// Requests answered with `status`, any route.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status
            .get(&status.to_string())
            .copied()
            .unwrap_or(0)
    }
}
