//! Which failures are retried, and how long to wait before the next try.

use std::time::Duration;

use rand::Rng;

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
