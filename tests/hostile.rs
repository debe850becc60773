//! Responses an attacker (or a broken proxy) could send: the tap must not carry its token, or
//! follow a link, out of `base_url`'s origin. Small hand-written servers on loopback stand in
//! for Harvest.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{json, Value};

/// A server on a free loopback port answering every request with `answer(path)`: (status line
/// and headers, body). It keeps every request's head.
struct Server {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
}

impl Server {
    fn start(answer: impl Fn(&str, u16) -> (String, String) + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (h, c) = (heads.clone(), count.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                h.lock().unwrap().push(head);
                let (status, body) = answer(&path, port);
                let _ = write!(
                    stream,
                    "{status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Server { port, heads, count }
    }
}

fn page(next: Option<&str>) -> String {
    json!({"clients": [{"id": 1, "name": "Acme", "is_active": true, "currency": "USD",
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z"}],
        "per_page": 2000, "total_pages": 2, "total_entries": 2, "next_page": 2, "previous_page": null,
        "page": 1, "links": {"first": "", "next": next, "previous": null, "last": ""}})
    .to_string()
}

fn run_against(harvest: &Server) -> Run {
    run_with(harvest, json!({}))
}

fn run_with(harvest: &Server, extra: Value) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut config = json!({"access_token": "secret-token-xyz", "account_id": "1",
        "start_date": "2024-01-01T00:00:00Z", "base_url": format!("http://127.0.0.1:{}/v2", harvest.port),
        "auth_url": format!("http://127.0.0.1:{}/id", harvest.port), "max_retries": 0,
        "user_agent": "test (t@example.com)"});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let c = write("config.json", &config);
    let cat = write("catalog.json", &catalog_selecting(&["clients"]));
    run_tap(&[
        "--config".as_ref(),
        c.as_os_str(),
        "--catalog".as_ref(),
        cat.as_os_str(),
    ])
}

#[test]
fn a_link_or_redirect_out_of_base_url_is_refused_and_the_token_stays_home() {
    let thief = Arc::new(Server::start(|_, _| ("HTTP/1.1 200 OK".into(), page(None))));
    let t = thief.port;
    for (what, answer) in [
        (
            "a next link to another port",
            Box::new(move |path: &str, _port: u16| {
                if path.contains("&page=2") || path.contains("?page=2") {
                    ("HTTP/1.1 200 OK".to_string(), page(None))
                } else {
                    (
                        "HTTP/1.1 200 OK".to_string(),
                        page(Some(&format!("http://127.0.0.1:{t}/v2/clients?page=2"))),
                    )
                }
            }) as Box<dyn Fn(&str, u16) -> (String, String) + Send>,
        ),
        (
            "a next link to localhost instead of 127.0.0.1",
            Box::new(move |_path: &str, port: u16| {
                (
                    "HTTP/1.1 200 OK".to_string(),
                    page(Some(&format!("http://localhost:{port}/v2/clients?page=2"))),
                )
            }),
        ),
        (
            "a redirect to another port",
            Box::new(move |_path: &str, _port: u16| {
                (
                    format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{t}/v2/clients"),
                    String::new(),
                )
            }),
        ),
    ] {
        let before = thief.count.load(Ordering::SeqCst);
        let harvest = Server::start(answer);
        let run = run_against(&harvest);
        assert_eq!(run.code, Some(1), "{what}: {}", run.stderr);
        let critical = run.critical_lines();
        assert_eq!(critical.len(), 1, "{what}: {}", run.stderr);
        assert!(
            critical[0].contains("stream clients failed")
                && (critical[0].contains("not under base_url")
                    || critical[0].contains("redirect outside base_url")),
            "{what}: {}",
            critical[0]
        );
        assert!(
            !run.stderr.contains("secret-token-xyz") && !run.stdout.contains("secret-token-xyz")
        );
        assert_eq!(
            thief.count.load(Ordering::SeqCst),
            before,
            "{what}: the other origin was contacted"
        );
        // Only the first page's records were read; the bookmark did not move past them.
        assert_eq!(
            run.records("clients").len(),
            if what.starts_with("a redirect") { 0 } else { 1 },
            "{what}"
        );
        assert!(
            run.last_state()["bookmarks"].get("clients").is_none(),
            "{what}: bookmark moved"
        );
        // Every request the tap made went to the configured origin, with the path prefix.
        for head in harvest.heads.lock().unwrap().iter() {
            assert!(head.starts_with("GET /v2/clients"), "{what}: {head}");
        }
    }
    assert!(thief.heads.lock().unwrap().is_empty());
}

/// One client, one page: a complete list.
fn whole_page() -> String {
    page(None)
        .replace("\"total_pages\":2", "\"total_pages\":1")
        .replace("\"total_entries\":2", "\"total_entries\":1")
}

#[test]
fn a_bogus_retry_after_is_capped_at_the_rate_window_on_429_and_503() {
    for status in ["429 Too Many Requests", "503 Service Unavailable"] {
        let served = Arc::new(AtomicUsize::new(0));
        let s2 = served.clone();
        let harvest = Server::start(move |_, _| {
            if s2.fetch_add(1, Ordering::SeqCst) == 0 {
                // A two-day wait (Harvest's own are 15 s, or the rest of the reports window).
                (
                    format!("HTTP/1.1 {status}\r\nRetry-After: 172800"),
                    "{}".into(),
                )
            } else {
                ("HTTP/1.1 200 OK".into(), whole_page())
            }
        });
        let started = std::time::Instant::now();
        let run = run_with(
            &harvest,
            json!({"rate_limit_window_seconds": 2, "max_retries": 2}),
        );
        run.assert_ok();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{status}: waited {:?}",
            started.elapsed()
        );
        assert!(
            run.stderr.contains(
                "Retry-After asks for 172800 s, more than the rate window; waiting 2.0 s"
            ),
            "{status}: {}",
            run.stderr
        );
        assert_eq!(run.records("clients").len(), 1, "{status}");
    }
}
