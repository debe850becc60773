//! Helpers shared by the simulator's integration tests: a blocking HTTP client with Harvest's
//! headers and small JSON utilities.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harvest_sim::{Sim, ACCOUNT_ID, PAT_ADMIN};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

pub const UA: &str = "harvest-sim tests (dev@example.com)";

/// A shared blocking client (no default User-Agent, 30 s timeout).
pub fn client() -> Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client")
        })
        .clone()
}

/// GET an absolute URL with the admin token.
pub fn get_url(url: &str) -> Response {
    get_url_as(url, PAT_ADMIN)
}

pub fn get_url_as(url: &str, token: &str) -> Response {
    client()
        .get(url)
        .header("User-Agent", UA)
        .header("Authorization", format!("Bearer {token}"))
        .header("Harvest-Account-Id", ACCOUNT_ID)
        .send()
        .expect("request")
}

/// GET `path` (relative to /v2, e.g. "/clients?per_page=5") with `token`.
pub fn get_as(sim: &Sim, path: &str, token: &str) -> Response {
    get_url_as(&format!("{}{}", sim.base_url(), path), token)
}

pub fn get(sim: &Sim, path: &str) -> Response {
    get_as(sim, path, PAT_ADMIN)
}

/// GET and parse a 200 JSON answer.
pub fn get_json(sim: &Sim, path: &str) -> Value {
    let r = get(sim, path);
    assert_eq!(r.status().as_u16(), 200, "GET {path}");
    r.json().expect("json body")
}

pub fn status(sim: &Sim, path: &str, token: &str) -> u16 {
    get_as(sim, path, token).status().as_u16()
}

/// Follows `links.next` from `first_url`, returning every page.
pub fn walk(first_url: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = Some(first_url.to_string());
    while let Some(u) = url {
        let r = get_url(&u);
        assert_eq!(r.status().as_u16(), 200, "GET {u}");
        let v: Value = r.json().expect("json");
        url = v["links"]["next"].as_str().map(str::to_string);
        pages.push(v);
        assert!(pages.len() < 10_000, "runaway pagination");
    }
    pages
}

pub fn ids(records: &[Value]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect()
}

pub fn id_set(records: &[Value]) -> BTreeSet<i64> {
    ids(records).into_iter().collect()
}

/// All records of the pages under `key`.
pub fn records(pages: &[Value], key: &str) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p[key].as_array().cloned().unwrap_or_default())
        .collect()
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Parameter names of a URL in order.
pub fn param_names(url: &str) -> Vec<String> {
    url.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts the simulator's binary with `args` and reads the JSON line it prints once listening.
pub fn spawn_binary(args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> (Child, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_harvest-sim"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn harvest-sim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("startup line");
    let v = serde_json::from_str(line.trim()).expect("startup line is JSON");
    (child, v)
}

/// GET a control API path (`/truth/clients?account_id=...`) and parse its JSON.
pub fn ctl_get(sim: &Sim, path: &str) -> Value {
    client()
        .get(format!("{}{path}", sim.control_url()))
        .send()
        .expect("control request")
        .json()
        .expect("json body")
}

/// POST a JSON body to a control API path and parse the JSON answer.
pub fn ctl_post(sim: &Sim, path: &str, body: &Value) -> Value {
    client()
        .post(format!("{}{path}", sim.control_url()))
        .json(body)
        .send()
        .expect("control request")
        .json()
        .expect("json body")
}
