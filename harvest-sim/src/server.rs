//! HTTP: the shared state, auth, rate limits, faults, latency, request statistics, the `/v2`
//! entry point, Harvest ID endpoints and the control API.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::NaiveDate;
use futures::{FutureExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{self, Answer, Ctx, Ep, Viewer};
use crate::config::{
    Fault, FaultKind, Features, HarvestAccount, Latency, MutateResult, RateLimit, RequestStats,
    Revocation, SimConfig, Trigger, ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, FORECAST_ACCOUNT_ID,
    FORECAST_ACCOUNT_NAME, PAT_ADMIN, PAT_MANAGER, PAT_MEMBER, REFRESH_ADMIN, REFRESH_MANAGER,
    REFRESH_MEMBER,
};
use crate::model::Res;
use crate::model::{AccessRole, Data};
use crate::params::Params;
use crate::query::{item_value, Indexes, Scope};
use crate::reports::{self, ReportArgs, ReportKind};
use crate::util::Date;

const INVALID_TOKEN: &str = r#"{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed or invalid for other reasons."}"#;

const NOT_FOUND_HTML: &str = "<!DOCTYPE html>\n<html><head><title>HARVEST: Can't find page</title>\
<meta charset=\"utf-8\"></head><body><div class=\"error-page\"><h1>Sorry, we can't find that \
page.</h1><p>The page you were looking for doesn't exist or may have moved. Try heading back \
to your <a href=\"https://www.getharvest.com\">Harvest account</a>.</p></div></body></html>\n";

const JSON_CT: &str = "application/json; charset=utf-8";

/// The role a refresh token or personal access token stands for, with its user index.
fn role_user(role: AccessRole) -> u32 {
    match role {
        AccessRole::Administrator => 0,
        AccessRole::Manager => 1,
        AccessRole::Member => 2,
    }
}

fn pat_role(token: &str) -> Option<AccessRole> {
    match token {
        PAT_ADMIN => Some(AccessRole::Administrator),
        PAT_MANAGER => Some(AccessRole::Manager),
        PAT_MEMBER => Some(AccessRole::Member),
        _ => None,
    }
}

fn refresh_role(token: &str) -> Option<AccessRole> {
    match token {
        REFRESH_ADMIN => Some(AccessRole::Administrator),
        REFRESH_MANAGER => Some(AccessRole::Manager),
        REFRESH_MEMBER => Some(AccessRole::Member),
        _ => None,
    }
}

struct OAuthToken {
    role: AccessRole,
    expires: Instant,
}

#[derive(Default)]
struct Limits {
    general: Option<RateLimit>,
    reports: Option<RateLimit>,
    windows: HashMap<(bool, String), VecDeque<Instant>>,
}

impl Limits {
    /// Counts a request in its window, or says how many whole seconds to wait.
    fn check(&mut self, token: &str, report: bool) -> Result<(), u64> {
        let Some(limit) = (if report { self.reports } else { self.general }) else {
            return Ok(());
        };
        let now = Instant::now();
        let q = self.windows.entry((report, token.to_string())).or_default();
        while let Some(&t) = q.front() {
            if now.duration_since(t) >= limit.window {
                q.pop_front();
            } else {
                break;
            }
        }
        if q.len() as u64 >= u64::from(limit.max_requests) {
            let wait = match q.front() {
                Some(&oldest) => limit.window.saturating_sub(now.duration_since(oldest)),
                None => limit.window,
            };
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        q.push_back(now);
        Ok(())
    }
}

struct FaultSlot {
    fault: Fault,
    /// The account whose requests it hits (all when `None`).
    account: Option<i64>,
    fired: u32,
    /// Matching requests so far (for [`Trigger::Nth`]).
    seen: u32,
    rng: ChaCha8Rng,
}

/// One simulated Harvest account: its identity, data, caches and whether the tokens still
/// reach it.
pub struct Account {
    pub spec: HarvestAccount,
    /// `spec.id` as requests send it in `Harvest-Account-Id`.
    id_str: String,
    data: RwLock<Data>,
    indexes: Mutex<Arc<Indexes>>,
    page_cache_bytes: usize,
    revoked: Mutex<Option<Revocation>>,
}

impl Account {
    fn new(spec: HarvestAccount, data: Data, page_cache_bytes: usize) -> Account {
        Account {
            id_str: spec.id.to_string(),
            indexes: Mutex::new(Arc::new(Indexes::new(data.version, page_cache_bytes))),
            data: RwLock::new(data),
            page_cache_bytes,
            revoked: Mutex::new(None),
            spec,
        }
    }

    /// How the account answers data requests now, if it is revoked.
    pub fn revoked(&self) -> Option<Revocation> {
        *self.revoked.lock()
    }

    /// Makes every data request to the account fail (`Some`), or answer again (`None`).
    pub fn set_revoked(&self, r: Option<Revocation>) {
        *self.revoked.lock() = r;
    }

    /// Record counts per resource (for logs and `/__control/info`).
    pub fn counts(&self) -> Value {
        let d = self.data.read();
        let ix = self.indexes(&d);
        let mut m = serde_json::Map::new();
        for r in crate::resources::all() {
            m.insert(
                r.name().to_string(),
                Value::from(ix.base_order(&d, r, Scope::All).len()),
            );
        }
        Value::Object(m)
    }

    fn indexes(&self, d: &Data) -> Arc<Indexes> {
        let mut g = self.indexes.lock();
        if g.version != d.version {
            *g = Arc::new(Indexes::new(d.version, self.page_cache_bytes));
        }
        g.clone()
    }

    pub fn truth(&self, resource: &str, features: Features) -> Result<Vec<Value>, String> {
        if resource == "company" {
            return Ok(vec![serde_json::to_value(crate::model::company(
                features, &self.spec,
            ))
            .map_err(|e| e.to_string())?]);
        }
        let res =
            Res::from_name(resource).ok_or_else(|| format!("unknown resource {resource:?}"))?;
        let d = self.data.read();
        let ix = self.indexes(&d);
        Ok(ix
            .base_order(&d, res, Scope::All)
            .into_iter()
            .map(|i| item_value(&d, &ix, res, i))
            .collect())
    }

    pub fn mutate(
        &self,
        resource: &str,
        update: usize,
        create: usize,
    ) -> Result<MutateResult, String> {
        let res = Res::from_name(resource)
            .ok_or_else(|| format!("cannot mutate {resource:?} (unknown or company)"))?;
        let mut d = self.data.write();
        let now = chrono::Utc::now().timestamp().max(d.max_ts + 1);
        let (updated, created) = crate::mutate::mutate(&mut d, res, update, create, now);
        Ok(MutateResult { updated, created })
    }

    /// Deletes records by id with Harvest's cascades (see [`crate::delete`]).
    pub fn delete(&self, resource: &str, ids: &[i64]) -> Result<crate::delete::Deleted, String> {
        let mut d = self.data.write();
        let now = chrono::Utc::now().timestamp();
        match resource {
            "invoice_line_items" | "estimate_line_items" => {
                crate::delete::delete_line_items(&mut d, resource == "invoice_line_items", ids, now)
            }
            _ => {
                let res = Res::from_name(resource)
                    .ok_or_else(|| format!("cannot delete {resource:?} (unknown or company)"))?;
                crate::delete::delete(&mut d, res, ids, now)
            }
        }
    }

    /// Archives records (`is_active: false`).
    pub fn archive(&self, resource: &str, ids: &[i64]) -> Result<(), String> {
        let res =
            Res::from_name(resource).ok_or_else(|| format!("unknown resource {resource:?}"))?;
        let mut d = self.data.write();
        crate::mutate::archive(&mut d, res, ids, chrono::Utc::now().timestamp())
    }

    /// Moves time entries or expenses to another `spent_date`.
    pub fn redate(&self, resource: &str, ids: &[i64], date: NaiveDate) -> Result<(), String> {
        let res =
            Res::from_name(resource).ok_or_else(|| format!("unknown resource {resource:?}"))?;
        let mut d = self.data.write();
        crate::mutate::redate(
            &mut d,
            res,
            ids,
            Date::from_naive(date),
            chrono::Utc::now().timestamp(),
        )
    }

    /// Ids of records Harvest would let one delete.
    pub fn deletable(&self, resource: &str, count: usize) -> Result<Vec<i64>, String> {
        let d = self.data.read();
        match resource {
            "invoice_line_items" | "estimate_line_items" => Ok(crate::delete::pick_line_items(
                &d,
                resource == "invoice_line_items",
                count,
            )),
            _ => {
                let res = Res::from_name(resource)
                    .ok_or_else(|| format!("cannot delete {resource:?} (unknown or company)"))?;
                Ok(crate::delete::pick(&d, res, count))
            }
        }
    }

    pub fn report(
        &self,
        path: &str,
        from: NaiveDate,
        to: NaiveDate,
        include_fixed_fee: bool,
    ) -> Result<Vec<Value>, String> {
        let kind = ReportKind::from_path(path).ok_or_else(|| format!("unknown report {path:?}"))?;
        let d = self.data.read();
        let ix = self.indexes(&d);
        Ok(reports::compute(
            &d,
            &ix,
            kind,
            ReportArgs {
                from: Date::from_naive(from),
                to: Date::from_naive(to),
                include_fixed_fee,
                viewer: None,
                is_active: None,
            },
        ))
    }
}

/// Shared state of a running simulator.
pub struct AppState {
    pub config: SimConfig,
    /// The Harvest accounts, the first being [`ACCOUNT_ID`].
    accounts: Vec<Account>,
    features: Mutex<Features>,
    limits: Mutex<Limits>,
    tokens: Mutex<HashMap<String, OAuthToken>>,
    token_counter: AtomicU64,
    faults: Mutex<Vec<FaultSlot>>,
    fault_counter: AtomicU64,
    latency: Mutex<Vec<Latency>>,
    rng: Mutex<ChaCha8Rng>,
    stats: Mutex<RequestStats>,
    /// `/v2` requests being answered now.
    in_flight: std::sync::atomic::AtomicU64,
    addr: OnceLock<SocketAddr>,
    started: Instant,
}

/// Marks a response with the route template it was served by.
#[derive(Clone)]
struct RouteTag(String);

/// Marks a `/v2` response with the simulated account its request named.
#[derive(Clone)]
struct AccountTag(i64);

/// Generates each account's data (on one thread per account when there are several).
fn generate_all(specs: &[HarvestAccount], size: crate::config::Size) -> Vec<Data> {
    if specs.len() == 1 {
        return vec![crate::gen::generate(specs[0].seed, size)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .iter()
            .map(|a| s.spawn(move || crate::gen::generate(a.seed, size)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

impl AppState {
    /// Generates the accounts for `config`.
    pub fn new(config: SimConfig) -> AppState {
        let specs = config.harvest_accounts();
        let accounts = generate_all(&specs, config.size)
            .into_iter()
            .zip(specs)
            .map(|(data, spec)| Account::new(spec, data, config.page_cache_bytes))
            .collect();
        let latency = config.latency.clone().into_iter().collect();
        AppState {
            features: Mutex::new(config.features),
            limits: Mutex::new(Limits {
                general: config.rate_limit,
                reports: config.reports_rate_limit,
                windows: HashMap::new(),
            }),
            tokens: Mutex::new(HashMap::new()),
            token_counter: AtomicU64::new(0),
            faults: Mutex::new(Vec::new()),
            fault_counter: AtomicU64::new(0),
            latency: Mutex::new(latency),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed ^ 0x1a7e)),
            stats: Mutex::new(RequestStats::default()),
            in_flight: std::sync::atomic::AtomicU64::new(0),
            addr: OnceLock::new(),
            accounts,
            started: Instant::now(),
            config,
        }
    }

    pub fn set_addr(&self, addr: SocketAddr) {
        let _ = self.addr.set(addr);
    }

    fn addr_string(&self) -> String {
        self.addr
            .get()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "127.0.0.1".to_string())
    }

    /// Every Harvest account, the first being [`ACCOUNT_ID`].
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// The account with this id.
    pub fn account(&self, id: i64) -> Option<&Account> {
        self.accounts.iter().find(|a| a.spec.id == id)
    }

    /// The position of the account a `Harvest-Account-Id` names (the exact decimal id).
    fn account_named(&self, id: &str) -> Option<usize> {
        self.accounts.iter().position(|a| a.id_str == id)
    }

    pub fn features(&self) -> Features {
        *self.features.lock()
    }

    pub fn set_features(&self, f: Features) {
        *self.features.lock() = f;
    }

    pub fn set_rate_limits(&self, general: Option<RateLimit>, reports: Option<RateLimit>) {
        let mut l = self.limits.lock();
        l.general = general;
        l.reports = reports;
        l.windows.clear();
    }

    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for t in self.tokens.lock().values_mut() {
            t.expires = now;
        }
    }

    /// Adds a fault for requests to every account (`None`) or to one.
    pub fn add_fault(&self, fault: Fault, account: Option<i64>) {
        let n = self.fault_counter.fetch_add(1, Ordering::Relaxed);
        let rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ (n + 1).wrapping_mul(0xFA17));
        self.faults.lock().push(FaultSlot {
            fault,
            account,
            fired: 0,
            seen: 0,
            rng,
        });
    }

    pub fn clear_faults(&self) {
        self.faults.lock().clear();
    }

    /// The fault that hits this request to `account`, if any (first matching slot that
    /// triggers).
    fn draw_fault(&self, path: &str, account: i64) -> Option<FaultKind> {
        let mut faults = self.faults.lock();
        for slot in faults.iter_mut() {
            if !path.starts_with(&slot.fault.path_prefix)
                || slot.account.is_some_and(|a| a != account)
            {
                continue;
            }
            slot.seen += 1;
            let hit = match slot.fault.trigger {
                Trigger::FirstN(n) => slot.fired < n,
                Trigger::Nth(n) => slot.seen == n,
                Trigger::Fraction(f) => slot.rng.random::<f64>() < f,
            };
            if hit {
                slot.fired += 1;
                return Some(slot.fault.kind.clone());
            }
        }
        None
    }

    pub fn set_latency(&self, l: Latency) {
        let mut v = self.latency.lock();
        v.retain(|x| x.path_prefix != l.path_prefix);
        if !l.fixed.is_zero() || !l.jitter.is_zero() {
            v.push(l);
        }
    }

    pub fn clear_latency(&self) {
        self.latency.lock().clear();
    }

    /// Latency for a path: the rule with the longest matching prefix.
    fn latency_for(&self, path: &str) -> Option<Duration> {
        let rule = {
            let v = self.latency.lock();
            v.iter()
                .filter(|l| path.starts_with(&l.path_prefix))
                .max_by_key(|l| l.path_prefix.len())
                .cloned()
        }?;
        let jitter = if rule.jitter.is_zero() {
            Duration::ZERO
        } else {
            let ns = rule.jitter.as_nanos().min(u128::from(u64::MAX)) as u64;
            Duration::from_nanos(self.rng.lock().random_range(0..=ns))
        };
        Some(rule.fixed + jitter)
    }

    pub fn requests(&self) -> RequestStats {
        self.stats.lock().clone()
    }

    pub fn reset_requests(&self) {
        *self.stats.lock() = RequestStats::default();
    }

    fn record(&self, route: &str, status: u16, account: Option<i64>) {
        let mut s = self.stats.lock();
        s.total += 1;
        if status == 429 {
            s.throttled += 1;
        }
        let code = status.to_string();
        if let Some(a) = account {
            *s.by_account
                .entry(a.to_string())
                .or_default()
                .entry(code.clone())
                .or_default() += 1;
        }
        *s.by_status.entry(code.clone()).or_default() += 1;
        *s.by_route
            .entry(route.to_string())
            .or_default()
            .entry(code)
            .or_default() += 1;
    }

    /// Resolves a bearer token (PAT or unexpired OAuth access token) to its role.
    fn token_role(&self, token: &str) -> Option<AccessRole> {
        if let Some(r) = pat_role(token) {
            return Some(r);
        }
        let tokens = self.tokens.lock();
        let t = tokens.get(token)?;
        (Instant::now() < t.expires).then_some(t.role)
    }

    fn issue_token(&self, role: AccessRole) -> String {
        let n = self.token_counter.fetch_add(1, Ordering::Relaxed) + 1;
        let salt = crate::util::mix64(n ^ self.started.elapsed().as_nanos() as u64);
        let token = format!("sim-oauth-{}-{n}-{salt:016x}", role.as_str());
        self.tokens.lock().insert(
            token.clone(),
            OAuthToken {
                role,
                expires: Instant::now() + self.config.token_ttl,
            },
        );
        token
    }

    /// An account as `/__control/info` lists it.
    fn account_json(a: &Account) -> Value {
        json!({
            "id": a.spec.id,
            "name": a.spec.name,
            "seed": a.spec.seed,
            "revoked": a.revoked().map(Revocation::status),
        })
    }

    /// Credentials, URLs and settings; `users`, `data_version` and `account` are those of
    /// `acct`.
    pub fn info(&self, acct: &Account) -> Value {
        let a = self.addr_string();
        let d = acct.data.read();
        let uid = |r: AccessRole| d.users.get(role_user(r) as usize).map(|u| u.id);
        let rl = |l: Option<RateLimit>| {
            l.map(
                |l| json!({"max_requests": l.max_requests, "window_secs": l.window.as_secs_f64()}),
            )
        };
        let limits = self.limits.lock();
        json!({
            "base_url": format!("http://{a}/v2"),
            "auth_url": format!("http://{a}/id/api/v2"),
            "control_url": format!("http://{a}/__control"),
            "account_id": ACCOUNT_ID,
            "forecast_account_id": FORECAST_ACCOUNT_ID,
            "access_token": PAT_ADMIN,
            "personal_access_tokens": {
                "administrator": PAT_ADMIN, "manager": PAT_MANAGER, "member": PAT_MEMBER,
            },
            "oauth": {
                "token_url": format!("http://{a}/id/api/v2/oauth2/token"),
                "accounts_url": format!("http://{a}/id/api/v2/accounts"),
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "refresh_tokens": {
                    "administrator": REFRESH_ADMIN, "manager": REFRESH_MANAGER, "member": REFRESH_MEMBER,
                },
                "access_token_ttl_secs": self.config.token_ttl.as_secs(),
            },
            "users": {
                "administrator": uid(AccessRole::Administrator),
                "manager": uid(AccessRole::Manager),
                "member": uid(AccessRole::Member),
            },
            "seed": self.config.seed,
            "size": self.config.size,
            "rate_limit": rl(limits.general),
            "reports_rate_limit": rl(limits.reports),
            "features": self.features(),
            "data_version": d.version,
            "accounts": self.accounts.iter().map(AppState::account_json).collect::<Vec<_>>(),
            "account": AppState::account_json(acct),
        })
    }
}

// ------------------------------------------------------------------ responses

fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CT));
    r
}

fn message(status: u16, msg: &str) -> (StatusCode, &'static str, Bytes) {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        JSON_CT,
        Bytes::from(json!({ "message": msg }).to_string()),
    )
}

fn not_found() -> (StatusCode, &'static str, Bytes) {
    (
        StatusCode::NOT_FOUND,
        "text/html; charset=utf-8",
        Bytes::from_static(NOT_FOUND_HTML.as_bytes()),
    )
}

fn html_error(status: u16) -> (StatusCode, &'static str, Bytes) {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{} {}</title></head><body><h1>{} {}</h1><p>harvest-sim injected fault</p></body></html>\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or("Error"),
        code.as_u16(),
        code.canonical_reason().unwrap_or("Error"),
    );
    (code, "text/html; charset=utf-8", Bytes::from(body))
}

fn build(parts: (StatusCode, &'static str, Bytes)) -> Response {
    let (status, ct, body) = parts;
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn tagged(mut r: Response, tag: String) -> Response {
    r.extensions_mut().insert(RouteTag(tag));
    r
}

fn too_many(retry_after: u64) -> Response {
    let mut r = build(message(
        429,
        &format!("Too many requests. Retry after {retry_after} seconds."),
    ));
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn invalid_token() -> Response {
    json_bytes(
        StatusCode::UNAUTHORIZED,
        Bytes::from_static(INVALID_TOKEN.as_bytes()),
    )
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn has_user_agent(h: &HeaderMap) -> bool {
    header_str(h, "user-agent").is_some_and(|s| !s.is_empty())
}

fn bearer(h: &HeaderMap) -> Option<String> {
    let v = header_str(h, "authorization")?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
        .filter(|t| !t.is_empty())
}

// ------------------------------------------------------------------ server

/// Serves `st` on `listener` until `shutdown` completes (plus a short grace period).
pub async fn serve(
    st: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use axum::serve::ListenerExt;
    let app = router(st);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let signal = shutdown.boxed().shared();
    let server = axum::serve(listener, app).with_graceful_shutdown(signal.clone());
    tokio::select! {
        _ = server => {}
        _ = async { signal.await; tokio::time::sleep(Duration::from_millis(500)).await } => {}
    }
}

/// The whole application: API, Harvest ID and control API.
pub fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/id/api/v2/oauth2/token", post(oauth_token))
        .route("/id/api/v2/accounts", get(accounts))
        .route("/__control/requests", get(ctl_requests))
        .route("/__control/reset", post(ctl_reset))
        .route("/__control/mutate", post(ctl_mutate))
        .route("/__control/delete", post(ctl_delete))
        .route("/__control/truth/{resource}", get(ctl_truth))
        .route(
            "/__control/faults",
            post(ctl_add_fault).delete(ctl_clear_faults),
        )
        .route(
            "/__control/latency",
            post(ctl_latency).delete(ctl_clear_latency),
        )
        .route("/__control/report/{*path}", get(ctl_report))
        .route("/__control/info", get(ctl_info))
        .route("/__control/features", post(ctl_features))
        .route("/__control/rate_limits", post(ctl_rate_limits))
        .route("/__control/expire_tokens", post(ctl_expire_tokens))
        .route("/__control/revoke", post(ctl_revoke).delete(ctl_restore))
        .fallback(api_entry)
        .layer(middleware::from_fn_with_state(st.clone(), observe))
        .with_state(st)
}

/// Counts a `/v2` request as being answered until dropped (also when the client goes away).
struct InFlight(Arc<AppState>);

impl InFlight {
    fn enter(st: &Arc<AppState>) -> InFlight {
        use std::sync::atomic::Ordering;
        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let mut s = st.stats.lock();
        s.max_in_flight = s.max_in_flight.max(now);
        InFlight(st.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Latency and statistics for everything but the control API.
async fn observe(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__control") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let _in_flight = path.starts_with("/v2/").then(|| InFlight::enter(&st));
    if let Some(d) = st.latency_for(&path) {
        tokio::time::sleep(d).await;
    }
    let resp = next.run(req).await;
    let route = match resp.extensions().get::<RouteTag>() {
        Some(t) => t.0.clone(),
        None if path.starts_with("/id/") => format!("{method} {path}"),
        None => format!("{method} (unmatched)"),
    };
    let account = resp.extensions().get::<AccountTag>().map(|a| a.0);
    st.record(&route, resp.status().as_u16(), account);
    resp
}

enum Outcome {
    Forbidden(String),
    Answer(Answer),
}

/// What a request's token and account stand for.
enum Auth {
    /// A valid token and one of the simulated accounts (its position).
    Caller(Viewer, usize),
    /// A missing, bad or expired token, or a missing or unknown account (with the simulated
    /// account named, if any).
    Invalid(Option<usize>),
    /// A valid token naming a revoked account.
    Revoked(usize, Revocation),
}

/// The caller a request's token and account stand for, if they are valid.
fn authenticate(st: &AppState, headers: &HeaderMap, params: &Params) -> Auth {
    let token = bearer(headers).or_else(|| params.get("access_token").map(str::to_string));
    let account = header_str(headers, "harvest-account-id")
        .or_else(|| params.get("account_id"))
        .and_then(|a| st.account_named(a));
    let (Some(token), Some(ai)) = (token, account) else {
        return Auth::Invalid(account);
    };
    let Some(role) = st.token_role(&token) else {
        return Auth::Invalid(account);
    };
    if let Some(r) = st.accounts[ai].revoked() {
        return Auth::Revoked(ai, r);
    }
    Auth::Caller(
        Viewer {
            role,
            user: role_user(role),
            token,
        },
        ai,
    )
}

/// What a fault does before the answer: answers in its place (status, 429), or waits or
/// deletes records of the request's account, then lets the request be answered.
async fn fault_before_answer(
    st: &Arc<AppState>,
    account: usize,
    fault: Option<&FaultKind>,
) -> Option<Response> {
    match fault {
        Some(FaultKind::Status(code)) => return Some(build(html_error(*code))),
        Some(FaultKind::Status429 { retry_after }) => return Some(too_many((*retry_after).max(1))),
        Some(FaultKind::Slow(d)) => tokio::time::sleep(*d).await,
        Some(FaultKind::Delete { resource, ids }) => {
            let (st2, resource, ids) = (st.clone(), resource.clone(), ids.clone());
            let _ =
                tokio::task::spawn_blocking(move || st2.accounts[account].delete(&resource, &ids))
                    .await;
        }
        _ => {}
    }
    None
}

/// Every `/v2` request (and any unknown path).
async fn api_entry(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(rest) = path.strip_prefix("/v2/") else {
        return build(not_found());
    };
    let route = if method == Method::GET || method == Method::HEAD {
        api::match_route(rest)
    } else {
        None
    };
    let tag = match &route {
        Some(r) => format!("GET {}", r.template),
        None => format!("{method} /v2/(unmatched)"),
    };
    let headers = req.headers();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let params = Params::parse(Some(&raw_query));

    // 1. User-Agent.
    if !has_user_agent(headers) {
        return tagged(
            build(message(
                400,
                "A User-Agent header is required, e.g. \"MyApp (me@example.com)\"",
            )),
            tag,
        );
    }
    // 2. Token and account (then the account's revocation).
    let in_account = |mut r: Response, ai: Option<usize>| {
        if let Some(ai) = ai {
            r.extensions_mut()
                .insert(AccountTag(st.accounts[ai].spec.id));
        }
        r
    };
    let (viewer, ai) = match authenticate(&st, headers, &params) {
        Auth::Caller(v, ai) => (v, ai),
        Auth::Invalid(ai) => return tagged(in_account(invalid_token(), ai), tag),
        Auth::Revoked(ai, Revocation::InvalidToken) => {
            return tagged(in_account(invalid_token(), Some(ai)), tag)
        }
        Auth::Revoked(ai, Revocation::Forbidden) => {
            let r = build(message(403, "You do not have access to this account"));
            return tagged(in_account(r, Some(ai)), tag);
        }
    };
    let account_id = st.accounts[ai].spec.id;
    // 3. Rate limit per token, whatever the account (a throttled request is not counted in
    //    the window).
    let is_report = route.as_ref().is_some_and(|r| r.ep.is_report());
    if let Err(secs) = st.limits.lock().check(&viewer.token, is_report) {
        return tagged(in_account(too_many(secs), Some(ai)), tag);
    }
    // 4. Faults.
    let fault = st.draw_fault(&path, account_id);
    if let Some(resp) = fault_before_answer(&st, ai, fault.as_ref()).await {
        return tagged(in_account(resp, Some(ai)), tag);
    }
    // 5. Unknown route.
    let Some(route) = route else {
        return tagged(
            in_account(apply_fault(not_found(), fault.as_ref()), Some(ai)),
            tag,
        );
    };
    // 6. Permission, then the answer (on a blocking thread: it takes the data lock and may
    //    serialize megabytes).
    let host = header_str(headers, "host")
        .map(str::to_string)
        .unwrap_or_else(|| st.addr_string());
    let features = st.features();
    let st2 = st.clone();
    let ep: Ep = route.ep.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let acct = &st2.accounts[ai];
        let d = acct.data.read();
        if let Some(msg) = api::forbidden(&ep, &viewer, features, &d) {
            return Outcome::Forbidden(msg);
        }
        let ix = acct.indexes(&d);
        let cx = Ctx {
            host: &host,
            path: &path,
            raw_query: &raw_query,
            params: &params,
            viewer: &viewer,
            features,
            account: &acct.spec,
        };
        Outcome::Answer(api::answer(&d, &ix, &ep, &cx))
    })
    .await;
    let parts = match outcome {
        Ok(Outcome::Forbidden(msg)) => message(403, &msg),
        Ok(Outcome::Answer(Answer::Json(b))) => (StatusCode::OK, JSON_CT, b),
        Ok(Outcome::Answer(Answer::NotFound)) => not_found(),
        Ok(Outcome::Answer(Answer::Error(e))) => message(e.status, &e.message),
        Err(_) => message(500, "internal error"),
    };
    let mut resp = apply_fault(parts, fault.as_ref());
    if method == Method::HEAD {
        *resp.body_mut() = Body::empty();
    }
    tagged(in_account(resp, Some(ai)), tag)
}

/// Applies a body-level fault (close mid-body, truncated JSON) to a finished answer.
fn apply_fault(parts: (StatusCode, &'static str, Bytes), fault: Option<&FaultKind>) -> Response {
    match fault {
        Some(FaultKind::CloseMidBody) => {
            let (status, ct, body) = parts;
            let full = body.len();
            let cut = (full / 2).max(1).min(full);
            let first = body.slice(..cut);
            // Let hyper flush the headers and the first part before the body fails, which
            // makes it drop the connection.
            let stream = futures::stream::iter(vec![Ok::<Bytes, std::io::Error>(first)]).chain(
                futures::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "harvest-sim: connection closed mid-body",
                    ))
                }),
            );
            let mut r = Response::new(Body::from_stream(stream));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full as u64));
            r
        }
        Some(FaultKind::TruncatedJson) => {
            let (_, _, body) = parts;
            let cut = (body.len() / 2).max(1).min(body.len());
            json_bytes(StatusCode::OK, body.slice(..cut))
        }
        Some(FaultKind::OddData) if parts.0 == StatusCode::OK => {
            let (status, ct, body) = parts;
            match serde_json::from_slice::<Value>(&body) {
                Ok(mut v) => {
                    oddify(&mut v);
                    build((
                        status,
                        ct,
                        Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                    ))
                }
                Err(_) => build((status, ct, body)),
            }
        }
        Some(FaultKind::OddText) if parts.0 == StatusCode::OK => {
            let (status, ct, body) = parts;
            build((status, ct, Bytes::from(odd_text(&body))))
        }
        _ => build(parts),
    }
}

/// The [`FaultKind::OddText`] rewrite of a JSON body, at the byte level.
fn odd_text(body: &[u8]) -> Vec<u8> {
    let swaps: [(&[u8], &[u8]); 3] = [
        (b"\"name\":\"", b"\"name\":\"\\ud83d"),
        (b"\"notes\":\"", b"\"notes\":\"\xff\xfe"),
        (b"{\"id\":", b"{\"zz_huge\":1e400,\"id\":"),
    ];
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    let mut i = 0;
    'scan: while i < body.len() {
        for (from, to) in swaps {
            if body[i..].starts_with(from) {
                out.extend_from_slice(to);
                i += from.len();
                continue 'scan;
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// The [`FaultKind::OddData`] rewrite of every record of a list (or of a single object).
fn oddify(v: &mut Value) {
    fn record(r: &mut serde_json::Map<String, Value>) {
        for (_, field) in r.iter_mut() {
            if let Value::Number(n) = field {
                *field = Value::String(n.to_string());
            }
        }
        r.remove("created_at");
        r.insert(
            "zz_unexpected".into(),
            json!({"nested": [1, "naïve ☃"], "emoji": "🚀"}),
        );
        r.insert("ünïcödé_field".into(), json!("日本語のテキスト"));
    }
    if let Value::Object(top) = v {
        let mut listed = false;
        for (_, field) in top.iter_mut() {
            if let Value::Array(items) = field {
                for item in items.iter_mut() {
                    if let Value::Object(r) = item {
                        record(r);
                        listed = true;
                    }
                }
            }
        }
        if !listed && !top.contains_key("links") {
            record(top);
        }
    }
}

// ------------------------------------------------------------------ Harvest ID

fn oauth_error(error: &str, description: &str) -> Response {
    let mut r = Json(json!({"error": error, "error_description": description})).into_response();
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

fn basic_credentials(h: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = header_str(h, "authorization")?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

async fn oauth_token(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let tag = "POST /id/api/v2/oauth2/token".to_string();
    if !has_user_agent(&headers) {
        return tagged(
            oauth_error("invalid_request", "A User-Agent header is required"),
            tag,
        );
    }
    let is_json = header_str(&headers, "content-type").is_some_and(|c| c.contains("json"));
    let mut form: HashMap<String, String> = HashMap::new();
    if is_json {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body) {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                form.insert(k, s);
            }
        }
    } else {
        for (k, v) in form_urlencoded::parse(&body) {
            form.insert(k.into_owned(), v.into_owned());
        }
    }
    let (cid, secret) = match (form.get("client_id"), form.get("client_secret")) {
        (Some(c), Some(s)) => (c.clone(), s.clone()),
        _ => basic_credentials(&headers).unwrap_or_default(),
    };
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {}
        Some(_) => {
            return tagged(
                oauth_error(
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.",
                ),
                tag,
            )
        }
        None => {
            return tagged(
                oauth_error(
                    "invalid_request",
                    "The request is missing a required parameter: grant_type.",
                ),
                tag,
            )
        }
    }
    if cid != CLIENT_ID || secret != CLIENT_SECRET {
        return tagged(
            oauth_error(
                "invalid_client",
                "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
            ),
            tag,
        );
    }
    let Some(refresh) = form.get("refresh_token").cloned() else {
        return tagged(
            oauth_error(
                "invalid_request",
                "The request is missing a required parameter: refresh_token.",
            ),
            tag,
        );
    };
    let Some(role) = refresh_role(&refresh) else {
        return tagged(
            oauth_error(
                "invalid_grant",
                "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
            ),
            tag,
        );
    };
    let access = st.issue_token(role);
    tagged(
        Json(json!({
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": st.config.token_ttl.as_secs(),
        }))
        .into_response(),
        tag,
    )
}

async fn accounts(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let tag = "GET /id/api/v2/accounts".to_string();
    if !has_user_agent(&headers) {
        return tagged(build(message(400, "A User-Agent header is required")), tag);
    }
    let Some(role) = bearer(&headers).and_then(|t| st.token_role(&t)) else {
        return tagged(invalid_token(), tag);
    };
    let user = {
        let d = st.accounts[0].data.read();
        let u = &d.users[role_user(role) as usize];
        json!({
            "id": u.id, "first_name": u.first_name, "last_name": u.last_name, "email": u.email,
        })
    };
    // The Forecast account first, then every Harvest account (revoked ones too: the token
    // lost access after listing them).
    let mut accounts = vec![
        json!({"id": FORECAST_ACCOUNT_ID, "name": FORECAST_ACCOUNT_NAME, "product": "forecast"}),
    ];
    accounts.extend(
        st.accounts
            .iter()
            .map(|a| json!({"id": a.spec.id, "name": a.spec.name, "product": "harvest"})),
    );
    tagged(
        Json(json!({"user": user, "accounts": accounts})).into_response(),
        tag,
    )
}

// ------------------------------------------------------------------ control API

fn ctl_error(status: StatusCode, msg: &str) -> Response {
    let mut r = Json(json!({ "message": msg })).into_response();
    *r.status_mut() = status;
    r
}

/// An account id in a control request body: a JSON number or a string of digits.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum IdParam {
    Num(i64),
    Str(String),
}

/// A control request naming an account the simulator lacks: answered 404.
struct UnknownAccount(String);

impl IntoResponse for UnknownAccount {
    fn into_response(self) -> Response {
        ctl_error(
            StatusCode::NOT_FOUND,
            &format!("unknown account {:?}", self.0),
        )
    }
}

/// The position of the account a control request names: `?account_id=` or the body's
/// `account_id` (`None` with neither).
fn ctl_named_account(
    st: &AppState,
    query: Option<&str>,
    body: Option<&IdParam>,
) -> Result<Option<usize>, UnknownAccount> {
    let params = Params::parse(query);
    let raw = match (params.get("account_id"), body) {
        (Some(q), _) => q.to_string(),
        (None, Some(IdParam::Num(n))) => n.to_string(),
        (None, Some(IdParam::Str(s))) => s.clone(),
        (None, None) => return Ok(None),
    };
    match st.account_named(raw.trim()) {
        Some(ai) => Ok(Some(ai)),
        None => Err(UnknownAccount(raw)),
    }
}

/// The position of the account a control request addresses (the first by default).
fn ctl_account(
    st: &AppState,
    query: Option<&str>,
    body: Option<&IdParam>,
) -> Result<usize, UnknownAccount> {
    ctl_named_account(st, query, body).map(|a| a.unwrap_or(0))
}

/// Runs `f` on the addressed account on a blocking thread (it takes the data lock and may
/// build large answers): its value as JSON, its error with `error_status`.
async fn ctl_on_account<T, F>(
    st: Arc<AppState>,
    account: Result<usize, UnknownAccount>,
    error_status: StatusCode,
    f: F,
) -> Response
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&Account) -> Result<T, String> + Send + 'static,
{
    let ai = match account {
        Ok(ai) => ai,
        Err(e) => return e.into_response(),
    };
    match tokio::task::spawn_blocking(move || f(&st.accounts[ai])).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => ctl_error(error_status, &e),
        Err(_) => ctl_error(StatusCode::INTERNAL_SERVER_ERROR, "control request failed"),
    }
}

async fn ctl_requests(State(st): State<Arc<AppState>>) -> Response {
    Json(st.requests()).into_response()
}

async fn ctl_reset(State(st): State<Arc<AppState>>) -> Response {
    st.reset_requests();
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct MutateBody {
    #[serde(default)]
    account_id: Option<IdParam>,
    resource: String,
    #[serde(default)]
    update: usize,
    #[serde(default)]
    create: usize,
}

async fn ctl_mutate(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    Json(b): Json<MutateBody>,
) -> Response {
    let ai = ctl_account(&st, q.as_deref(), b.account_id.as_ref());
    ctl_on_account(st, ai, StatusCode::BAD_REQUEST, move |a| {
        a.mutate(&b.resource, b.update, b.create)
    })
    .await
}

#[derive(Deserialize)]
struct DeleteBody {
    #[serde(default)]
    account_id: Option<IdParam>,
    resource: String,
    /// The ids to delete; or, without them, `count` records Harvest would let one delete.
    #[serde(default)]
    ids: Option<Vec<i64>>,
    #[serde(default)]
    count: usize,
}

async fn ctl_delete(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    Json(b): Json<DeleteBody>,
) -> Response {
    let ai = ctl_account(&st, q.as_deref(), b.account_id.as_ref());
    ctl_on_account(st, ai, StatusCode::BAD_REQUEST, move |a| {
        let ids = match b.ids {
            Some(ids) => ids,
            None => a.deletable(&b.resource, b.count)?,
        };
        a.delete(&b.resource, &ids)
    })
    .await
}

async fn ctl_truth(
    State(st): State<Arc<AppState>>,
    Path(resource): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let ai = ctl_account(&st, q.as_deref(), None);
    let features = st.features();
    ctl_on_account(st, ai, StatusCode::NOT_FOUND, move |a| {
        a.truth(&resource, features)
    })
    .await
}

#[derive(Deserialize)]
struct FaultBody {
    /// Only requests to this account (all accounts without it).
    #[serde(default)]
    account_id: Option<IdParam>,
    #[serde(default)]
    path_prefix: String,
    kind: String,
    status: Option<u16>,
    delay_ms: Option<u64>,
    retry_after: Option<u64>,
    first_n: Option<u32>,
    nth: Option<u32>,
    fraction: Option<f64>,
    resource: Option<String>,
    ids: Option<Vec<i64>>,
}

async fn ctl_add_fault(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    Json(b): Json<FaultBody>,
) -> Response {
    let account = match ctl_named_account(&st, q.as_deref(), b.account_id.as_ref()) {
        Ok(ai) => ai.map(|ai| st.accounts[ai].spec.id),
        Err(e) => return e.into_response(),
    };
    let kind = match b.kind.as_str() {
        "status" => FaultKind::Status(b.status.unwrap_or(500)),
        "close_mid_body" => FaultKind::CloseMidBody,
        "truncated_json" => FaultKind::TruncatedJson,
        "odd_data" => FaultKind::OddData,
        "odd_text" => FaultKind::OddText,
        "slow" => FaultKind::Slow(Duration::from_millis(b.delay_ms.unwrap_or(30_000))),
        "delete" => FaultKind::Delete {
            resource: b.resource.clone().unwrap_or_default(),
            ids: b.ids.clone().unwrap_or_default(),
        },
        "status429" | "status_429" | "429" => FaultKind::Status429 {
            retry_after: b.retry_after.unwrap_or(1),
        },
        other => {
            return ctl_error(
                StatusCode::BAD_REQUEST,
                &format!("unknown fault kind {other:?} (status, close_mid_body, truncated_json, odd_data, odd_text, slow, status429, delete)"),
            )
        }
    };
    let trigger = match (b.first_n, b.fraction) {
        _ if b.nth.is_some() => Trigger::Nth(b.nth.unwrap_or(1)),
        (Some(n), _) => Trigger::FirstN(n),
        (None, Some(f)) => Trigger::Fraction(f),
        (None, None) => Trigger::Fraction(1.0),
    };
    st.add_fault(
        Fault {
            path_prefix: b.path_prefix,
            kind,
            trigger,
        },
        account,
    );
    Json(json!({"ok": true})).into_response()
}

async fn ctl_clear_faults(State(st): State<Arc<AppState>>) -> Response {
    st.clear_faults();
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct LatencyBody {
    #[serde(default)]
    fixed_ms: u64,
    #[serde(default)]
    jitter_ms: u64,
    #[serde(default)]
    path_prefix: String,
}

async fn ctl_latency(State(st): State<Arc<AppState>>, Json(b): Json<LatencyBody>) -> Response {
    st.set_latency(Latency {
        fixed: Duration::from_millis(b.fixed_ms),
        jitter: Duration::from_millis(b.jitter_ms),
        path_prefix: b.path_prefix,
    });
    Json(json!({"ok": true})).into_response()
}

async fn ctl_clear_latency(State(st): State<Arc<AppState>>) -> Response {
    st.clear_latency();
    Json(json!({"ok": true})).into_response()
}

async fn ctl_report(
    State(st): State<Arc<AppState>>,
    Path(path): Path<String>,
    req: Request,
) -> Response {
    let params = Params::parse(req.uri().query());
    let ai = ctl_account(&st, req.uri().query(), None);
    let Some(kind) = ReportKind::from_path(&path) else {
        return ctl_error(StatusCode::NOT_FOUND, &format!("unknown report {path:?}"));
    };
    let (from, to) = if kind.needs_dates() {
        match api::report_dates(&params) {
            Ok(x) => x,
            Err(e) => {
                return ctl_error(
                    StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                    &e.message,
                )
            }
        }
    } else {
        (Date(0), Date(0))
    };
    let iff = match api::include_fixed_fee(&params) {
        Ok(b) => b,
        Err(e) => return ctl_error(StatusCode::UNPROCESSABLE_ENTITY, &e.message),
    };
    ctl_on_account(st, ai, StatusCode::BAD_REQUEST, move |a| {
        a.report(kind.path(), from.to_naive(), to.to_naive(), iff)
    })
    .await
}

async fn ctl_info(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let ai = ctl_account(&st, q.as_deref(), None);
    let st2 = st.clone();
    ctl_on_account(st, ai, StatusCode::NOT_FOUND, move |a| {
        let mut info = st2.info(a);
        info["counts"] = a.counts();
        Ok(info)
    })
    .await
}

async fn ctl_features(State(st): State<Arc<AppState>>, Json(b): Json<Value>) -> Response {
    let mut f = st.features();
    let get = |k: &str| b.get(k).and_then(Value::as_bool);
    if let Some(v) = get("invoice") {
        f.invoice = v;
    }
    if let Some(v) = get("estimate") {
        f.estimate = v;
    }
    if let Some(v) = get("expense") {
        f.expense = v;
    }
    st.set_features(f);
    Json(f).into_response()
}

#[derive(Deserialize)]
struct LimitBody {
    max_requests: u32,
    window_ms: u64,
}

#[derive(Deserialize)]
struct LimitsBody {
    general: Option<LimitBody>,
    reports: Option<LimitBody>,
}

async fn ctl_rate_limits(State(st): State<Arc<AppState>>, Json(b): Json<LimitsBody>) -> Response {
    let conv = |l: Option<LimitBody>| {
        l.map(|l| RateLimit::new(l.max_requests, Duration::from_millis(l.window_ms)))
    };
    st.set_rate_limits(conv(b.general), conv(b.reports));
    Json(json!({"ok": true})).into_response()
}

async fn ctl_expire_tokens(State(st): State<Arc<AppState>>) -> Response {
    st.expire_access_tokens();
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct RevokeBody {
    /// Required (here or as `?account_id=`).
    #[serde(default)]
    account_id: Option<IdParam>,
    /// 401 (`invalid_token`, the default) or 403.
    #[serde(default)]
    status: Option<u16>,
}

async fn ctl_revoke(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    Json(b): Json<RevokeBody>,
) -> Response {
    let ai = match ctl_named_account(&st, q.as_deref(), b.account_id.as_ref()) {
        Ok(Some(ai)) => ai,
        Ok(None) => return ctl_error(StatusCode::BAD_REQUEST, "account_id is required"),
        Err(e) => return e.into_response(),
    };
    let Some(how) = Revocation::from_status(b.status.unwrap_or(401)) else {
        return ctl_error(StatusCode::BAD_REQUEST, "status must be 401 or 403");
    };
    st.accounts[ai].set_revoked(Some(how));
    Json(json!({"ok": true})).into_response()
}

/// Gives access back to `?account_id=` (to every account without it).
async fn ctl_restore(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    match ctl_named_account(&st, q.as_deref(), None) {
        Ok(Some(ai)) => st.accounts[ai].set_revoked(None),
        Ok(None) => st.accounts.iter().for_each(|a| a.set_revoked(None)),
        Err(e) => return e.into_response(),
    }
    Json(json!({"ok": true})).into_response()
}
