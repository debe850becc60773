//! Small helpers every layer may use, using none: reading a date-time, suggesting the name
//! meant, showing a link in an error line. This module is the bottom of the layering.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub use stream_maps::suggest::closest;

/// Parses `start_date`: a bare date, `T` or space separator, fractional seconds, `Z`, an offset
/// or no zone (taken as UTC).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let t = s.replacen(' ', "T", 1);
    if let Ok(d) = DateTime::parse_from_rfc3339(&t) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(d) = DateTime::parse_from_str(&t, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&t, fmt) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

/// A link as an error line shows it: without user information or query, at most 120 chars.
pub fn shown_link(url: &str) -> String {
    let shown = match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(an unreadable URL)".to_string(),
    };
    shown.chars().take(120).collect()
}
