//! The last layer of the request path: the retry policy. What one try came to (an
//! [`Outcome`]) and what the request went through so far ([`Attempts`]) make a [`Decision`]:
//! wait and send again, hold the whole budget (a 429), refresh the token (a first 401), or give
//! up with the error to report. [`RetryPolicy::decide`] touches no network and no clock, so a
//! test drives it outcome by outcome.

use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::HttpError;

/// How many 429s one request waits out before it fails...
pub const MAX_THROTTLED: u32 = 50;

/// ...or how many rate windows it may wait on 429s in all.
pub const THROTTLED_WINDOWS: u32 = 10;

/// The wait a 429 without a `Retry-After` asks for.
pub const THROTTLE_FALLBACK: Duration = Duration::from_secs(15);

/// What one try of a request came to, when it did not give the page.
#[derive(Debug)]
pub enum Outcome {
    /// No response, or a body cut off on the way (a refused connection, a timeout).
    Failed(String),
    /// The request cannot be made (a header that cannot be sent), or its body is over
    /// `max_response_mb`: another try would do the same.
    Fatal(String),
    /// A 2xx whose body is not complete JSON: it was cut short.
    CutShort { bytes: usize },
    /// A 2xx whose body is JSON, but not what the reader expects.
    Unreadable(String),
    /// Any status but 2xx, with its `Retry-After` and body.
    Status {
        code: u16,
        retry_after: Option<String>,
        body: bytes::Bytes,
    },
}

/// What the request path does next.
#[derive(Debug)]
pub enum Decision {
    /// Wait `after`, then send again; `warning` is the line that says so.
    Retry { after: Duration, warning: String },
    /// A 429: every request on the budget waits `after`, then this one is sent again.
    Pause(Duration),
    /// A first 401 with OAuth credentials: refresh the access token, then send again.
    Refresh,
    /// A 401 that no refresh cures: fail, with Harvest ID's word on why.
    Refused,
    /// Fail with this error.
    GiveUp(HttpError),
}

/// What one request went through so far.
#[derive(Debug, Clone)]
pub struct Attempts<'a> {
    /// The path template, for the messages.
    endpoint: &'a str,
    /// Failures retried (and the one given up on): 5xx, no response, cut bodies.
    pub failures: u32,
    /// The access token was refreshed after a 401.
    pub refreshed: bool,
    /// 429s, and the time they asked to wait in all.
    pub throttled: u32,
    pub throttled_for: Duration,
}

impl Attempts<'_> {
    pub fn new(endpoint: &str) -> Attempts<'_> {
        Attempts {
            endpoint,
            failures: 0,
            refreshed: false,
            throttled: 0,
            throttled_for: Duration::ZERO,
        }
    }
}

/// Which failures are retried, how often, and how long apart.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Failures retried before the request fails (`max_retries`); 429s do not count.
    pub max_retries: u32,
    /// The first backoff (`backoff_base`): see [`backoff`].
    pub backoff_base: Duration,
    /// A 401 is worth one token refresh (OAuth credentials; a personal token is not refreshed).
    pub refresh_on_401: bool,
    /// The request's rate window: the longest `Retry-After` waited out.
    pub window: Duration,
}

impl RetryPolicy {
    /// The same policy for a request on a budget whose window is `window`.
    pub fn within(self, window: Duration) -> RetryPolicy {
        RetryPolicy { window, ..self }
    }

    /// What to do after `outcome`, noted in `attempts`.
    pub fn decide(&self, attempts: &mut Attempts, outcome: &Outcome) -> Decision {
        let endpoint = attempts.endpoint;
        match outcome {
            Outcome::Failed(why) => self.failure(attempts, why, None),
            Outcome::CutShort { bytes } => {
                let why = format!("the response body is not complete JSON ({bytes} bytes)");
                self.failure(attempts, &why, None)
            }
            Outcome::Fatal(why) => {
                Decision::GiveUp(HttpError::Rejected(format!("GET {endpoint}: {why}")))
            }
            Outcome::Unreadable(why) => Decision::GiveUp(HttpError::Rejected(format!(
                "GET {endpoint}: unreadable page: {why}"
            ))),
            Outcome::Status {
                code: 429,
                retry_after,
                ..
            } => self.throttled(attempts, retry_after.as_deref()),
            Outcome::Status { code: 401, .. } if self.refresh_on_401 && !attempts.refreshed => {
                attempts.refreshed = true;
                Decision::Refresh
            }
            Outcome::Status { code: 401, .. } => Decision::Refused,
            Outcome::Status { code, body, .. } if !retryable_status(*code) => {
                Decision::GiveUp(refusal(endpoint, *code, body))
            }
            // A 503 that says when to come back is waited out (capped), not backed off.
            Outcome::Status {
                code: 503,
                retry_after: Some(h),
                ..
            } => self.failure(attempts, "Harvest answered 503", Some(h)),
            Outcome::Status { code, .. } => {
                self.failure(attempts, &format!("Harvest answered {code}"), None)
            }
        }
    }

    /// A failure worth another try, until [`RetryPolicy::max_retries`] of them: the backoff,
    /// or the (capped) wait a `Retry-After` asks for.
    fn failure(
        &self,
        attempts: &mut Attempts,
        failure: &str,
        retry_after: Option<&str>,
    ) -> Decision {
        let endpoint = attempts.endpoint;
        attempts.failures += 1;
        let n = attempts.failures;
        if n > self.max_retries {
            return Decision::GiveUp(HttpError::Exhausted(format!(
                "GET {endpoint}: {failure}; gave up after {n} tries"
            )));
        }
        let backoff = backoff(self.backoff_base, n);
        let (after, asked) = match retry_after {
            Some(h) => (
                capped_retry_after(Some(h), backoff, self.window, endpoint),
                " (Retry-After)",
            ),
            None => (backoff, ""),
        };
        let warning = format!(
            "GET {endpoint}: {failure}; retry {n}/{} in {:.1} s{asked}",
            self.max_retries,
            after.as_secs_f64()
        );
        Decision::Retry { after, warning }
    }

    /// A 429: the budget waits out its (capped) `Retry-After`, up to [`MAX_THROTTLED`] times
    /// or [`THROTTLED_WINDOWS`] windows in all.
    fn throttled(&self, attempts: &mut Attempts, retry_after: Option<&str>) -> Decision {
        attempts.throttled += 1;
        let (n, waited) = (attempts.throttled, attempts.throttled_for);
        if n > MAX_THROTTLED || waited > self.window * THROTTLED_WINDOWS {
            return Decision::GiveUp(HttpError::Exhausted(format!(
                "GET {}: still throttled (429) after {n} waits ({:.0} s)",
                attempts.endpoint,
                waited.as_secs_f64()
            )));
        }
        let wait = capped_retry_after(
            retry_after,
            THROTTLE_FALLBACK,
            self.window,
            attempts.endpoint,
        );
        attempts.throttled_for += wait;
        Decision::Pause(wait)
    }
}

/// The error for a status that is not retried.
pub fn refusal(endpoint: &str, status: u16, body: &[u8]) -> HttpError {
    match status {
        401 => HttpError::Unauthorized(format!(
            "GET {endpoint}: Harvest rejected the credentials (401 invalid_token): check the token and account_id"
        )),
        403 => HttpError::Forbidden(format!("GET {endpoint}: 403 Forbidden: {}", message(body))),
        404 => HttpError::NotFound(format!("GET {endpoint}: 404 Not Found")),
        422 => HttpError::Unprocessable(format!(
            "GET {endpoint}: Harvest answered 422: {}",
            message(body)
        )),
        s @ 300..=399 => HttpError::Rejected(format!(
            "GET {endpoint}: Harvest answered {s}, a redirect outside base_url (not followed: the token is only sent there)"
        )),
        s => HttpError::Rejected(format!("GET {endpoint}: Harvest answered {s}: {}", message(body))),
    }
}

/// The longest error message shown from a response.
const MESSAGE_CHARS: usize = 200;

/// Harvest's message from an error body: its JSON `message`, `error_description` or `error`,
/// at most [`MESSAGE_CHARS`] characters on one line. Nothing else of a body is shown (it may
/// echo the request).
fn message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        for key in ["message", "error_description", "error"] {
            if let Some(m) = v.get(key).and_then(Value::as_str) {
                let one_line: String = crate::log::redact(m)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(MESSAGE_CHARS)
                    .collect();
                return one_line;
            }
        }
        return "(no message)".into();
    }
    if body.trim_ascii_start().starts_with(b"<") {
        "(an HTML page)".into()
    } else {
        format!("(a body of {} bytes that is not JSON)", body.len())
    }
}

/// The longest backoff between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Exponential backoff with full jitter: a random wait in [d/2, d] where d = base * 2^(attempt-1),
/// capped at [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let d = exp.min(MAX_BACKOFF);
    let half = d / 2;
    half + d.mul_f64(rand::rng().random_range(0.0..0.5))
}

/// Statuses worth another try: Harvest's transient server errors.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

/// The wait a 429 (or a 503) asks for, at most `cap` (the budget's window: Harvest's own
/// `Retry-After` never asks for more; a bigger one is a broken or hostile answer, and is logged).
pub fn capped_retry_after(
    header: Option<&str>,
    fallback: Duration,
    cap: Duration,
    endpoint: &str,
) -> Duration {
    let wait = retry_after(header, fallback);
    if wait > cap {
        crate::log::warn(&format!(
            "GET {endpoint}: Retry-After asks for {:.0} s, more than the rate window; waiting {:.1} s",
            wait.as_secs_f64(),
            cap.as_secs_f64()
        ));
        return cap;
    }
    wait
}

/// The wait a 429 asks for: `Retry-After` in whole seconds (or an HTTP date), else a window.
pub fn retry_after(header: Option<&str>, fallback: Duration) -> Duration {
    let Some(h) = header.map(str::trim) else {
        return fallback;
    };
    if let Ok(secs) = h.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            // Bounded so that any number makes a Duration; the caller caps the wait.
            return Duration::from_secs_f64(secs.min(1e9));
        }
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc2822(h) {
        let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
        return wait.to_std().unwrap_or(Duration::ZERO);
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(1);
        let first = backoff(base, 1);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        let third = backoff(base, 3);
        assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
        assert!(backoff(base, 30) <= MAX_BACKOFF);
    }

    const SECOND: Duration = Duration::from_secs(1);

    fn policy(max_retries: u32, refresh_on_401: bool) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            backoff_base: SECOND,
            refresh_on_401,
            window: Duration::from_secs(15),
        }
    }

    fn status(code: u16, retry_after: Option<&str>, body: &str) -> Outcome {
        Outcome::Status {
            code,
            retry_after: retry_after.map(str::to_string),
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    /// The wait and warning of a retry; fails on any other decision.
    fn retried(decision: Decision) -> (Duration, String) {
        match decision {
            Decision::Retry { after, warning } => (after, warning),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    fn given_up(decision: Decision) -> HttpError {
        match decision {
            Decision::GiveUp(e) => e,
            other => panic!("expected to give up, got {other:?}"),
        }
    }

    #[test]
    fn a_429_pauses_the_budget_for_its_capped_retry_after() {
        let p = policy(3, false);
        let mut tries = Attempts::new("/x");
        let pause = |tries: &mut Attempts, ra| match p.decide(tries, &status(429, ra, "")) {
            Decision::Pause(wait) => wait,
            other => panic!("expected a pause, got {other:?}"),
        };
        assert_eq!(pause(&mut tries, Some("3")), Duration::from_secs(3));
        assert_eq!(pause(&mut tries, None), THROTTLE_FALLBACK);
        // More than the window is a broken answer: the window is waited.
        assert_eq!(pause(&mut tries, Some("1000000000")), p.window);
        assert_eq!(pause(&mut tries, Some("soon")), THROTTLE_FALLBACK);
        let small = p.within(Duration::from_secs(10));
        let mut other = Attempts::new("/x");
        assert!(
            matches!(small.decide(&mut other, &status(429, None, "")), Decision::Pause(w) if w == Duration::from_secs(10))
        );
        // 429s are not failures: they do not use up the retries.
        assert_eq!((tries.throttled, tries.failures), (4, 0));
        assert_eq!(tries.throttled_for, Duration::from_secs(3 + 15 + 15 + 15));
    }

    #[test]
    fn throttling_ends_after_fifty_waits_or_ten_windows() {
        let p = policy(3, false);
        let mut tries = Attempts::new("/x");
        for _ in 0..MAX_THROTTLED {
            assert!(matches!(
                p.decide(&mut tries, &status(429, Some("0"), "")),
                Decision::Pause(_)
            ));
        }
        let e = given_up(p.decide(&mut tries, &status(429, Some("0"), "")));
        assert!(matches!(e, HttpError::Exhausted(_)));
        assert_eq!(
            e.to_string(),
            "GET /x: still throttled (429) after 51 waits (0 s)"
        );

        let mut tries = Attempts::new("/x");
        for _ in 0..=THROTTLED_WINDOWS {
            assert!(matches!(
                p.decide(&mut tries, &status(429, None, "")),
                Decision::Pause(_)
            ));
        }
        let e = given_up(p.decide(&mut tries, &status(429, None, "")));
        assert_eq!(
            e.to_string(),
            "GET /x: still throttled (429) after 12 waits (165 s)"
        );
    }

    #[test]
    fn server_errors_back_off_exponentially_up_to_the_retry_limit() {
        let p = policy(3, false);
        let mut tries = Attempts::new("/x");
        for (n, (low, high)) in [(1, (500, 1000)), (2, (1000, 2000)), (3, (2000, 4000))] {
            let (after, warning) = retried(p.decide(&mut tries, &status(502, None, "")));
            let ms = after.as_millis();
            assert!(ms >= low && ms <= high, "try {n}: {ms} ms");
            let expected = format!("GET /x: Harvest answered 502; retry {n}/3 in ");
            assert!(
                warning.starts_with(&expected) && warning.ends_with(" s"),
                "{warning}"
            );
        }
        let e = given_up(p.decide(&mut tries, &status(500, None, "")));
        assert!(matches!(e, HttpError::Exhausted(_)));
        assert_eq!(
            e.to_string(),
            "GET /x: Harvest answered 500; gave up after 4 tries"
        );
        assert_eq!(tries.failures, 4);
    }

    #[test]
    fn a_503_waits_out_its_retry_after_capped() {
        let p = policy(3, false);
        let mut tries = Attempts::new("/x");
        let (after, warning) = retried(p.decide(&mut tries, &status(503, Some("2"), "")));
        assert_eq!(after, Duration::from_secs(2));
        assert_eq!(
            warning,
            "GET /x: Harvest answered 503; retry 1/3 in 2.0 s (Retry-After)"
        );
        let (after, _) = retried(p.decide(&mut tries, &status(503, Some("99999"), "")));
        assert_eq!(after, p.window);
        // Without Retry-After, a 503 is backed off as the other 5xx are.
        let (after, warning) = retried(p.decide(&mut tries, &status(503, None, "")));
        assert!(after <= Duration::from_secs(4) && !warning.contains("Retry-After"));
    }

    #[test]
    fn connection_errors_and_cut_bodies_are_retried() {
        let p = policy(1, false);
        let mut tries = Attempts::new("/x");
        let refused = Outcome::Failed("cannot connect to h:1 (refused)".into());
        let (_, warning) = retried(p.decide(&mut tries, &refused));
        assert!(warning.starts_with("GET /x: cannot connect to h:1 (refused); retry 1/1 in "));
        let e = given_up(p.decide(&mut tries, &Outcome::CutShort { bytes: 12 }));
        assert_eq!(
            e.to_string(),
            "GET /x: the response body is not complete JSON (12 bytes); gave up after 2 tries"
        );
        // What another try cannot mend is not tried again.
        let mut tries = Attempts::new("/x");
        let e = given_up(p.decide(&mut tries, &Outcome::Fatal("too big".into())));
        assert!(matches!(e, HttpError::Rejected(_)) && e.to_string() == "GET /x: too big");
        let e = given_up(p.decide(&mut tries, &Outcome::Unreadable("no".into())));
        assert_eq!(e.to_string(), "GET /x: unreadable page: no");
        assert_eq!(tries.failures, 0);
    }

    #[test]
    fn a_401_refreshes_an_oauth_token_once() {
        let oauth = policy(3, true);
        let mut tries = Attempts::new("/x");
        assert!(matches!(
            oauth.decide(&mut tries, &status(401, None, "")),
            Decision::Refresh
        ));
        assert!(matches!(
            oauth.decide(&mut tries, &status(401, None, "")),
            Decision::Refused
        ));
        assert_eq!(tries.failures, 0);
        // A personal access token cannot be refreshed.
        let mut tries = Attempts::new("/x");
        let token = policy(3, false);
        assert!(matches!(
            token.decide(&mut tries, &status(401, None, "")),
            Decision::Refused
        ));
    }

    #[test]
    fn client_errors_are_not_retried() {
        let p = policy(3, false);
        let mut tries = Attempts::new("/x");
        let mut give_up = |code, body| given_up(p.decide(&mut tries, &status(code, None, body)));
        let e = give_up(403, r#"{"message":"You are not allowed"}"#);
        assert!(matches!(e, HttpError::Forbidden(_)));
        assert_eq!(e.to_string(), "GET /x: 403 Forbidden: You are not allowed");
        let e = give_up(404, "<html>");
        assert!(matches!(e, HttpError::NotFound(_)));
        assert_eq!(e.to_string(), "GET /x: 404 Not Found");
        let e = give_up(422, r#"{"error":"not a manager"}"#);
        assert!(matches!(e, HttpError::Unprocessable(_)));
        assert_eq!(e.to_string(), "GET /x: Harvest answered 422: not a manager");
        let e = give_up(400, "<html>");
        assert_eq!(
            e.to_string(),
            "GET /x: Harvest answered 400: (an HTML page)"
        );
        let e = give_up(302, "");
        assert!(
            matches!(e, HttpError::Rejected(_))
                && e.to_string().contains("a redirect outside base_url")
        );
        assert_eq!(tries.failures, 0);
    }

    #[test]
    fn retry_after_forms() {
        let fb = Duration::from_secs(15);
        assert_eq!(retry_after(Some("3"), fb), Duration::from_secs(3));
        assert_eq!(retry_after(None, fb), fb);
        assert_eq!(retry_after(Some("soon"), fb), fb);
        let cap = Duration::from_secs(15);
        assert_eq!(capped_retry_after(Some("1000000000"), fb, cap, "/x"), cap);
        assert_eq!(
            capped_retry_after(Some("2"), fb, cap, "/x"),
            Duration::from_secs(2)
        );
    }
}
