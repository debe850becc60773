//! Responses an attacker (or a broken proxy) could send: the tap must not carry its token, or
//! follow a link, out of `base_url`'s origin. Small hand-written servers on loopback stand in
//! for Harvest.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::util::*;

/// A server on a free loopback port answering every request with `answer(path)`: (status line
/// and headers, body). It keeps every request's head.
struct Server {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
}

impl Server {
    fn start(answer: impl Fn(&str, u16) -> (String, String) + Send + 'static) -> Server {
        Server::start_bytes(move |path, port| {
            let (head, body) = answer(path, port);
            (head, body.into_bytes())
        })
    }

    /// [`Server::start`] with bodies that may be any bytes.
    fn start_bytes(answer: impl Fn(&str, u16) -> (String, Vec<u8>) + Send + 'static) -> Server {
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
                    "{status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .and_then(|_| stream.write_all(&body));
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
    run_full(harvest, extra, None)
}

/// A run against `harvest` with `extra` config keys (a null one removes the key) and a state.
fn run_full(harvest: &Server, extra: Value, state: Option<Value>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut config = json!({"access_token": "secret-token-xyz", "account_id": "1",
        "start_date": "2024-01-01T00:00:00Z", "base_url": format!("http://127.0.0.1:{}/v2", harvest.port),
        "auth_url": format!("http://127.0.0.1:{}/id", harvest.port), "max_retries": 0,
        "user_agent": "test (t@example.com)"});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            config.as_object_mut().unwrap().remove(k);
        } else {
            config[k] = v.clone();
        }
    }
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let c = write("config.json", &config);
    let cat = write("catalog.json", &catalog_selecting(&["clients"]));
    let mut args = vec![
        "--config".into(),
        c.into_os_string(),
        "--catalog".into(),
        cat.into_os_string(),
    ];
    if let Some(state) = state {
        args.push("--state".into());
        args.push(write("state.json", &state).into_os_string());
    }
    run_tap(&args)
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
        for head in nonempty(&harvest.heads.lock().unwrap(), what) {
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
        .replace("\"next_page\":2", "\"next_page\":null")
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

/// A client record with `id` and `updated_at`.
fn client(id: u64, updated_at: &str) -> Value {
    json!({"id": id, "name": format!("Client {id}"), "is_active": true, "currency": "USD",
        "created_at": "2024-01-01T00:00:00Z", "updated_at": updated_at})
}

/// A page-mode page of `clients` saying it is `page` of `total_pages`, linking to `next`.
fn clients_page(clients: Vec<Value>, page: u64, total_pages: u64, next: Option<String>) -> String {
    let total_entries = total_pages * 2000;
    json!({"clients": clients, "per_page": 2000, "total_pages": total_pages,
        "total_entries": total_entries, "next_page": if page < total_pages { Some(page + 1) } else { None },
        "previous_page": null, "page": page, "links": {"first": "", "next": next, "previous": null, "last": ""}})
    .to_string()
}

fn ok(body: String) -> (String, String) {
    ("HTTP/1.1 200 OK".into(), body)
}

fn page_number(path: &str) -> u64 {
    path.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
}

#[test]
fn secrets_echoed_by_a_server_never_reach_a_log_line() {
    // A 403 and a 422 whose message echoes the token, as a header and URL-encoded.
    for status in [
        "403 Forbidden",
        "422 Unprocessable Entity",
        "400 Bad Request",
    ] {
        let harvest = Server::start(move |_, _| {
            (
                format!("HTTP/1.1 {status}"),
                json!({"message": "rejected Authorization: Bearer secret-token-xyz (secret-token-xyz)"})
                    .to_string(),
            )
        });
        let run = run_with(&harvest, json!({}));
        assert!(
            run.stderr
                .contains("rejected Authorization: Bearer *** (***)"),
            "{status}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("secret-token-xyz"),
            "{status}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("token-xyz"),
            "{status}: {}",
            run.stderr
        );
    }
    // An OAuth endpoint answering 400 with the request form, and a body that is not JSON.
    for body in [
        json!({"error": "invalid_grant", "error_description":
            "grant_type=refresh_token&refresh_token=refresh-SECRET-1&client_id=app&client_secret=client-SECRET-2"})
        .to_string(),
        "refresh_token=refresh-SECRET-1&client_secret=client-SECRET-2".to_string(),
    ] {
        let b = body.clone();
        let harvest = Server::start(move |_, _| ("HTTP/1.1 400 Bad Request".into(), b.clone()));
        let run = run_with(
            &harvest,
            json!({"access_token": null, "client_id": "app", "client_secret": "client-SECRET-2",
                "refresh_token": "refresh-SECRET-1"}),
        );
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let critical = run.critical_lines();
        assert_eq!(critical.len(), 1, "{}", run.stderr);
        assert!(critical[0].contains("OAuth token refresh failed"), "{}", critical[0]);
        assert!(!run.stderr.contains("SECRET"), "{body}: {}", run.stderr);
    }
}

#[test]
fn plain_http_to_another_host_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"access_token": "secret-token-xyz", "account_id": "1", "start_date": "2024-01-01",
            "base_url": "http://harvest.invalid/v2", "max_retries": 0, "request_timeout": 2})
        .to_string(),
    )
    .unwrap();
    let run = run_tap(&["--config".as_ref(), config.as_os_str()]);
    assert!(
        run.stderr.contains(
            "base_url is plain http:// to harvest.invalid: the credentials travel unencrypted"
        ),
        "{}",
        run.stderr
    );
    // Loopback is not warned about.
    let harvest = Server::start(|_, _| ok(whole_page()));
    assert!(!run_against(&harvest).stderr.contains("plain http"));
}

#[test]
fn a_body_over_max_response_mb_fails_its_request_with_one_line() {
    // Announced (Content-Length) and endless (chunked, never ending).
    let big = Server::start(|_, _| {
        ok(format!(
            "{{\"clients\":[],\"pad\":\"{}\"}}",
            "x".repeat(1_200_000)
        ))
    });
    let run = run_with(&big, json!({"max_response_mb": 1}));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let critical = run.critical_lines();
    assert_eq!(critical.len(), 1, "{}", run.stderr);
    assert!(
        critical[0].contains("larger than max_response_mb (1 MB)"),
        "{}",
        critical[0]
    );

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
                let chunk = format!("{:x}\r\n{}\r\n", 65536, "[".repeat(65536));
                while stream.write_all(chunk.as_bytes()).is_ok() {}
            });
        }
    });
    let endless = Server {
        port,
        heads: Default::default(),
        count: Default::default(),
    };
    let started = std::time::Instant::now();
    let run = run_with(&endless, json!({"max_response_mb": 2}));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.critical_lines()[0].contains("larger than max_response_mb (2 MB)"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_huge_total_pages_is_read_lazily_and_ends_at_the_first_empty_page() {
    let harvest = Server::start(|path, port| {
        let next = |p: u64| {
            Some(format!(
                "http://127.0.0.1:{port}/v2/clients?page={p}&per_page=2000"
            ))
        };
        match page_number(path) {
            1 => ok(clients_page(
                vec![client(1, "2024-01-02T00:00:00Z")],
                1,
                1_000_000_000_000,
                next(2),
            )),
            p => ok(clients_page(vec![], p, 1_000_000_000_000, next(p + 1))),
        }
    });
    let run = run_against(&harvest);
    run.assert_ok();
    assert!(
        run.stderr.contains("the list ends there")
            || run.stderr.contains("records were added or deleted"),
        "{}",
        run.stderr
    );
    assert!(
        harvest.count.load(Ordering::SeqCst) < 100,
        "{} requests",
        harvest.count.load(Ordering::SeqCst)
    );
    assert_eq!(
        run.records("clients").len(),
        3,
        "read three times: the list never settles"
    );
    // The list never added up to its total: the bookmark stays.
    assert!(
        run.last_state()["bookmarks"].get("clients").is_none(),
        "{}",
        run.stdout
    );
}

#[test]
fn links_that_loop_fail_the_stream_instead_of_requesting_forever() {
    for (what, target) in [
        ("a link to itself", 1u64),
        ("a last page linking back to page 1", 0),
    ] {
        let harvest = Server::start(move |path, port| {
            // Cursor-style links (not planned ahead), each read once.
            let here = path
                .split("cursor=")
                .nth(1)
                .and_then(|c| c.split('&').next())
                .unwrap_or("0");
            let n: u64 = here.parse().unwrap_or(0);
            let to = if n == 2 { target } else { n + 1 };
            let link = if to == 0 {
                format!("http://127.0.0.1:{port}/v2/clients?per_page=2000")
            } else {
                format!("http://127.0.0.1:{port}/v2/clients?cursor={to}&per_page=2000")
            };
            let to_self = if target == 1 && n == 1 {
                link.replace("cursor=2", "cursor=1")
            } else {
                link
            };
            ok(
                json!({"clients": [client(n + 1, "2024-01-02T00:00:00Z")], "per_page": 2000,
                "total_pages": 3, "total_entries": 3, "next_page": null, "page": null,
                "links": {"next": to_self}})
                .to_string(),
            )
        });
        let run = run_against(&harvest);
        assert_eq!(run.code, Some(1), "{what}: {}", run.stderr);
        let critical = run.critical_lines();
        assert_eq!(critical.len(), 1, "{what}: {}", run.stderr);
        assert!(
            critical[0].contains("the list loops"),
            "{what}: {}",
            critical[0]
        );
        assert!(harvest.count.load(Ordering::SeqCst) <= 4, "{what}");
        assert!(
            run.last_state()["bookmarks"].get("clients").is_none(),
            "{what}"
        );
    }
}

#[test]
fn a_missing_next_link_is_made_from_next_page_and_the_bookmark_covers_only_what_was_read() {
    // Ten pages, none with links.next: read by page number (planned ahead, too).
    let harvest = Server::start(|path, _| {
        let p = page_number(path);
        let mut page: Value = serde_json::from_str(&clients_page(
            vec![client(p, &format!("2024-01-{:02}T00:00:00Z", p + 1))],
            p,
            10,
            None,
        ))
        .unwrap();
        page["total_entries"] = json!(10);
        ok(page.to_string())
    });
    let run = run_against(&harvest);
    run.assert_ok();
    assert!(
        run.stderr.contains("has no links.next; reading page 2"),
        "{}",
        run.stderr
    );
    assert_eq!(run.records("clients").len(), 10, "{}", run.stderr);
    assert_eq!(
        run.last_state()["bookmarks"]["clients"]["updated_at"],
        "2024-01-11T00:00:00Z"
    );

    // A cursor list (no page number to make) fails rather than stop short.
    let cursor = Server::start(|path, port| {
        if path.contains("cursor=") {
            ok(json!({"clients": [client(2, "2024-01-03T00:00:00Z")], "per_page": 2000, "total_pages": 3,
                "total_entries": 3, "next_page": 3, "page": 2, "links": {"next": null}})
            .to_string())
        } else {
            ok(json!({"clients": [client(1, "2024-01-02T00:00:00Z")], "per_page": 2000, "total_pages": 3,
                "total_entries": 3, "next_page": 2, "page": 1,
                "links": {"next": format!("http://127.0.0.1:{port}/v2/clients?cursor=abc&per_page=2000")}})
            .to_string())
        }
    });
    let run = run_against(&cursor);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.critical_lines()[0].contains("says page 3 of 3 follows but has no links.next to it"),
        "{}",
        run.stderr
    );
    assert_eq!(run.records("clients").len(), 2);
    assert!(run.last_state()["bookmarks"].get("clients").is_none());
}

#[test]
fn a_server_that_ignores_page_or_ends_early_is_not_believed() {
    // Every request answered with page 1, which claims 10^12 pages.
    let harvest = Server::start(|_, port| {
        ok(clients_page(
            vec![client(1, "2024-01-02T00:00:00Z")],
            1,
            1_000_000_000_000,
            Some(format!(
                "http://127.0.0.1:{port}/v2/clients?page=2&per_page=2000"
            )),
        ))
    });
    let run = run_against(&harvest);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.critical_lines()[0].contains("a page answered the same as one read before"),
        "{}",
        run.stderr
    );
    assert!(harvest.count.load(Ordering::SeqCst) < 40);
    assert!(run.last_state()["bookmarks"].get("clients").is_none());

    // A cursor list whose second page is empty but links on: read again, then its bookmark stays.
    let cursor = Server::start(|path, port| {
        let records = if path.contains("cursor=") {
            vec![]
        } else {
            vec![client(1, "2024-01-02T00:00:00Z")]
        };
        ok(json!({"clients": records, "per_page": 2000, "total_pages": null, "total_entries": null,
            "next_page": null, "page": null,
            "links": {"next": format!("http://127.0.0.1:{port}/v2/clients?cursor=more&per_page=2000")}})
        .to_string())
    });
    let run = run_against(&cursor);
    run.assert_ok();
    assert_eq!(
        run.records("clients").len(),
        3,
        "read three times: {}",
        run.stderr
    );
    assert!(run.last_state()["bookmarks"].get("clients").is_none());
}

#[test]
fn a_duplicated_envelope_key_fails_and_non_objects_are_skipped_loudly() {
    let twice = Server::start(|_, _| {
        ok(r#"{"clients":[{"id":1,"updated_at":"2024-01-02T00:00:00Z"}],"clients":[],"total_pages":1,"total_entries":1,"links":{"next":null}}"#.into())
    });
    let run = run_against(&twice);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.critical_lines()[0].contains("the key 'clients' twice"),
        "{}",
        run.stderr
    );

    let odd = Server::start(|_, _| {
        let mut page: Value = serde_json::from_str(&whole_page()).unwrap();
        page["clients"]
            .as_array_mut()
            .unwrap()
            .extend([json!(5), json!("x")]);
        page["total_entries"] = json!(3);
        ok(page.to_string())
    });
    let run = run_against(&odd);
    run.assert_ok();
    assert_eq!(run.records("clients").len(), 1);
    assert!(
        run.stderr
            .contains("an element of the list is a number, not a record; skipped"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("an element of the list is a string, not a record; skipped"),
        "{}",
        run.stderr
    );
    assert!(
        run.last_state()["bookmarks"].get("clients").is_none(),
        "the bookmark stays"
    );
}

#[test]
fn a_record_from_the_future_moves_the_bookmark_no_further_than_the_taps_clock() {
    // The server sends no Date header.
    let harvest = Server::start(|_, _| {
        ok(
            clients_page(vec![client(1, "2099-01-01T00:00:00Z")], 1, 1, None)
                .replace("\"total_entries\":2000", "\"total_entries\":1"),
        )
    });
    let run = run_against(&harvest);
    run.assert_ok();
    let bookmark = run.last_state()["bookmarks"]["clients"]["updated_at"]
        .as_str()
        .unwrap()
        .to_string();
    let at = chrono::DateTime::parse_from_rfc3339(&bookmark).unwrap();
    assert!(
        at < chrono::Utc::now() + chrono::TimeDelta::minutes(2),
        "{bookmark}"
    );

    // A bookmark and a start_date in the future are warned about.
    let run = run_full(
        &harvest,
        json!({"start_date": "2098-01-01"}),
        Some(json!({"bookmarks": {"clients": {"updated_at": "2099-06-01T00:00:00Z"}}})),
    );
    run.assert_ok();
    assert!(
        run.stderr
            .contains("start_date 2098-01-01T00:00:00+00:00 is in the future"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("stream clients: its bookmark 2099-06-01T00:00:00+00:00 is in the future"),
        "{}",
        run.stderr
    );
}

#[test]
fn odd_records_are_repaired_with_a_warning_and_the_stream_goes_on() {
    let harvest = Server::start_bytes(|_, _| {
        let mut body = br#"{"clients":[
            {"id":1,"name":"Caf\u00e9 \ud83d","is_active":true,"currency":"USD","updated_at":"2024-01-02T00:00:00Z"},
            {"id":2,"name":"Big","is_active":true,"currency":"USD","updated_at":"2024-01-02T00:00:00Z","statement_key":1e400,"unknown_field":-1e999},
            {"id":3,"name":"Bad "#.to_vec();
        body.extend_from_slice(b"\xff\xfe bytes");
        body.extend_from_slice(br#"","is_active":true,"currency":"USD","updated_at":"2024-01-03T00:00:00Z"}
        ],"per_page":2000,"total_pages":1,"total_entries":3,"page":1,"next_page":null,"links":{"next":null}}"#);
        ("HTTP/1.1 200 OK".into(), body)
    });
    let run = run_against(&harvest);
    run.assert_ok();
    let records = run.records("clients");
    assert_eq!(records.len(), 3, "{}", run.stderr);
    assert_eq!(records[0]["name"], "Café \u{FFFD}");
    assert_eq!(records[1]["statement_key"], Value::Null);
    assert!(records[1].get("unknown_field").is_none());
    assert!(records[2]["name"].as_str().unwrap().contains('\u{FFFD}'));
    for needle in [
        "stream clients: record 1: field 'name' held a lone UTF-16 surrogate, replaced by U+FFFD",
        "stream clients: record 2: field 'statement_key' held a number out of range, set to null",
        "stream clients: record 2: field 'unknown_field' held a number out of range in a field the schema does not have, dropped",
        "stream clients: record 3: field 'name' held bytes that are not UTF-8, replaced by U+FFFD",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    assert_eq!(
        run.last_state()["bookmarks"]["clients"]["updated_at"],
        "2024-01-03T00:00:00Z"
    );

    // A record that cannot be read even repaired (nested deeper than a record can be): skipped
    // with a warning naming it; the other records arrive; the bookmark stays for the next sync.
    let unreadable = Server::start(|_, _| {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        ok(r#"{"clients":[{"id":4,"deep":DEEP,"updated_at":"2024-01-05T00:00:00Z"},
            {"id":5,"name":"Fine","is_active":true,"currency":"USD","updated_at":"2024-01-02T00:00:00Z"}],
            "per_page":2000,"total_pages":1,"total_entries":2,"page":1,"next_page":null,"links":{"next":null}}"#.replace("DEEP", &deep))
    });
    let run = run_against(&unreadable);
    run.assert_ok();
    assert_eq!(run.records("clients").len(), 1);
    assert!(
        run.stderr
            .contains("stream clients: GET /clients: record id 4 cannot be read"),
        "{}",
        run.stderr
    );
    assert!(run.last_state()["bookmarks"].get("clients").is_none());
}

/// Harvest ID answering `answers` in turn (then the last one forever), the API a whole page.
fn id_server(answers: Vec<(&'static str, &'static str)>) -> (Server, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let a = asked.clone();
    let server = Server::start(move |path, _| {
        if path.starts_with("/id/") {
            let n = a.fetch_add(1, Ordering::SeqCst).min(answers.len() - 1);
            let (head, body) = answers[n];
            (head.to_string(), body.to_string())
        } else {
            ok(whole_page())
        }
    });
    (server, asked)
}

fn oauth(max_retries: u32) -> Value {
    json!({"access_token": null, "client_id": "app", "client_secret": "client-SECRET-2",
        "refresh_token": "refresh-SECRET-1", "max_retries": max_retries, "backoff_base_seconds": 0.1})
}

const TOKEN_OK: &str = r#"{"access_token":"issued-SECRET-3","token_type":"bearer","expires_in":64800,"refresh_token":"refresh-SECRET-1"}"#;

#[test]
fn harvest_id_is_retried_like_the_api() {
    for (what, first) in [
        (
            "a 503",
            ("HTTP/1.1 503 Service Unavailable", "<html>down</html>"),
        ),
        (
            "a 429",
            ("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1", "{}"),
        ),
        ("a 502", ("HTTP/1.1 502 Bad Gateway", "")),
    ] {
        let (harvest, asked) = id_server(vec![first, ("HTTP/1.1 200 OK", TOKEN_OK)]);
        let run = run_with(&harvest, oauth(3));
        run.assert_ok();
        assert_eq!(asked.load(Ordering::SeqCst), 2, "{what}");
        assert!(
            run.stderr
                .contains("OAuth token refresh (POST /oauth2/token): Harvest ID answered"),
            "{what}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("SECRET"), "{what}: {}", run.stderr);
    }
    // /accounts (OAuth without account_id): a 502, then the list.
    let accounts = r#"{"user":{"id":1},"accounts":[{"id":1,"name":"Acme","product":"harvest"}]}"#;
    let (harvest, asked) = id_server(vec![
        ("HTTP/1.1 200 OK", TOKEN_OK),
        ("HTTP/1.1 502 Bad Gateway", ""),
        ("HTTP/1.1 200 OK", accounts),
    ]);
    let mut config = oauth(3);
    config["account_id"] = Value::Null;
    let run = run_with(&harvest, config);
    run.assert_ok();
    assert_eq!(asked.load(Ordering::SeqCst), 3);
    assert!(
        run.stderr.contains("using Harvest account 1 (Acme)"),
        "{}",
        run.stderr
    );
    // Only a 400/401 with an OAuth error code is a credentials problem, and is not retried.
    let (harvest, asked) = id_server(vec![(
        "HTTP/1.1 400 Bad Request",
        r#"{"error":"invalid_grant","error_description":"The refresh token is invalid."}"#,
    )]);
    let run = run_with(&harvest, oauth(3));
    assert_eq!(run.code, Some(1));
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(
        run.critical_lines()[0]
            .contains("(400 invalid_grant): The refresh token is invalid.; check client_id"),
        "{}",
        run.stderr
    );
    // Retries run out: one line, no credentials hint.
    let (harvest, asked) = id_server(vec![("HTTP/1.1 503 Service Unavailable", "")]);
    let run = run_with(&harvest, oauth(2));
    assert_eq!(run.code, Some(1));
    assert_eq!(asked.load(Ordering::SeqCst), 3);
    let critical = run.critical_lines();
    assert!(
        critical[0].contains("Harvest ID answered 503; gave up after 3 tries")
            && !critical[0].contains("check client_id"),
        "{}",
        critical[0]
    );
}

#[test]
fn a_token_that_claims_a_short_life_is_refreshed_once_per_lifetime() {
    let short = r#"{"access_token":"issued-SECRET-3","expires_in":30}"#;
    let (harvest, asked) = id_server(vec![("HTTP/1.1 200 OK", short)]);
    // Several API requests: the token is not refreshed before each.
    let run = run_with(&harvest, {
        let mut c = oauth(0);
        c["max_concurrency"] = json!(1);
        c
    });
    run.assert_ok();
    assert_eq!(asked.load(Ordering::SeqCst), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("it expires in 30 s, unusually soon: it is refreshed again in 15 s"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_big_carried_state_is_not_written_again_and_again() {
    // Three MB of another tap's bookmarks, carried forward.
    let foreign: serde_json::Map<String, Value> = (0..30_000)
        .map(|i| {
            (
                format!("other_stream_{i:05}"),
                json!({"updated_at": "2024-01-01T00:00:00Z", "pad": "x".repeat(60)}),
            )
        })
        .collect();
    let state = json!({"bookmarks": foreign});
    let size = state.to_string().len();
    let harvest = Server::start(|_, _| ok(whole_page()));
    let run = run_full(&harvest, json!({}), Some(state));
    run.assert_ok();
    let states = run.messages.iter().filter(|m| m["type"] == "STATE").count();
    assert!(states <= 2, "{states} STATE messages");
    assert!(
        run.stdout.len() < 2 * size + 100_000,
        "{} bytes of stdout for a {size}-byte state",
        run.stdout.len()
    );
    let last = run.last_state();
    assert_eq!(last["bookmarks"].as_object().unwrap().len(), 30_001);
    assert_eq!(
        last["bookmarks"]["clients"]["updated_at"],
        "2024-01-02T00:00:00Z"
    );
}

#[test]
fn signals_end_the_run_within_seconds_even_when_stdout_is_not_read() {
    // Many pages of many clients: more than a pipe holds.
    let harvest = Arc::new(Server::start(|path, port| {
        let p = page_number(path);
        let clients = (0..2000)
            .map(|i| client(p * 10_000 + i, "2024-01-02T00:00:00Z"))
            .collect();
        ok(clients_page(
            clients,
            p,
            50,
            Some(format!(
                "http://127.0.0.1:{port}/v2/clients?page={}&per_page=2000",
                p + 1
            )),
        ))
    }));
    for signal in ["TERM", "INT", "HUP"] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            json!({"access_token": "secret-token-xyz", "account_id": "1", "start_date": "2024-01-01",
                "base_url": format!("http://127.0.0.1:{}/v2", harvest.port), "max_retries": 0,
                "rate_limit_requests": 1000, "rate_limit_window_seconds": 1})
            .to_string(),
        )
        .unwrap();
        let catalog = dir.path().join("catalog.json");
        std::fs::write(&catalog, catalog_selecting(&["clients"]).to_string()).unwrap();
        let mut child = std::process::Command::new(TAP)
            .args([
                "--config".as_ref(),
                config.as_os_str(),
                "--catalog".as_ref(),
                catalog.as_os_str(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        // Long enough for the pipe to fill and the writer to block on it.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let sent = std::time::Instant::now();
        std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                sent.elapsed() < std::time::Duration::from_secs(15),
                "SIG{signal}: still running"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let log = log.join().unwrap();
        assert_eq!(status.code(), Some(1), "SIG{signal}: {log}");
        assert!(
            sent.elapsed() < std::time::Duration::from_secs(8),
            "SIG{signal}: {:?}",
            sent.elapsed()
        );
        assert!(
            log.contains(&format!("SIG{signal} received: stopping")),
            "{log}"
        );
        assert!(log.contains("exiting without a final STATE"), "{log}");
        drop(child);
    }
}
