//! Small value types used by the typed records: dates, timestamps and decimals, each with a
//! hand-written, allocation-free JSON serialization (these run millions of times per walk).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};

/// A calendar date stored as days since 1970-01-01, serialized as `"YYYY-MM-DD"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub i32);

/// A UTC instant with second precision (unix seconds), serialized as `"YYYY-MM-DDTHH:MM:SSZ"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

/// A decimal in hundredths. Integral values serialize as JSON integers (`100`), others as
/// floats (`100.5`), the way Harvest answers most money and quantity fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dec(pub i64);

/// A decimal in hundredths that always serializes as a JSON float (`100.0`, `2.5`), the way
/// Harvest answers rates and hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Flt(pub i64);

/// Converts days since the unix epoch to (year, month, day) in the proleptic Gregorian calendar.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days as i64 + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400) as i32 + i32::from(m <= 2);
    (y, m, d)
}

/// Converts (year, month, day) to days since the unix epoch.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
}

fn put2(buf: &mut [u8], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

fn put4(buf: &mut [u8], at: usize, v: i32) {
    let v = v.clamp(0, 9999) as u32;
    buf[at] = b'0' + (v / 1000) as u8;
    buf[at + 1] = b'0' + (v / 100 % 10) as u8;
    buf[at + 2] = b'0' + (v / 10 % 10) as u8;
    buf[at + 3] = b'0' + (v % 10) as u8;
}

impl Date {
    pub fn from_naive(d: NaiveDate) -> Date {
        use chrono::Datelike;
        Date(days_from_civil(d.year(), d.month(), d.day()))
    }
    pub fn to_naive(self) -> NaiveDate {
        let (y, m, d) = civil_from_days(self.0);
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }
    pub fn ymd(y: i32, m: u32, d: u32) -> Date {
        Date(days_from_civil(y, m, d))
    }
    pub fn fmt_buf(self) -> [u8; 10] {
        let (y, m, d) = civil_from_days(self.0);
        let mut b = *b"0000-00-00";
        put4(&mut b, 0, y);
        put2(&mut b, 5, m);
        put2(&mut b, 8, d);
        b
    }
    /// `YYYYMMDD`, the compact form report links use.
    pub fn compact(self) -> String {
        let (y, m, d) = civil_from_days(self.0);
        format!("{y:04}{m:02}{d:02}")
    }
    /// Midnight UTC of this date, in unix seconds.
    pub fn midnight(self) -> i64 {
        i64::from(self.0) * 86_400
    }
    pub fn of_ts(ts: i64) -> Date {
        Date(ts.div_euclid(86_400) as i32)
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.fmt_buf();
        f.write_str(std::str::from_utf8(&b).unwrap_or("0000-00-00"))
    }
}

impl Ts {
    pub fn fmt_buf(self) -> [u8; 20] {
        let days = self.0.div_euclid(86_400) as i32;
        let secs = self.0.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let mut b = *b"0000-00-00T00:00:00Z";
        put4(&mut b, 0, y);
        put2(&mut b, 5, m);
        put2(&mut b, 8, d);
        put2(&mut b, 11, secs / 3600);
        put2(&mut b, 14, secs / 60 % 60);
        put2(&mut b, 17, secs % 60);
        b
    }
    pub fn now() -> Ts {
        Ts(Utc::now().timestamp())
    }
    pub fn to_chrono(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0, 0).unwrap_or_default()
    }
}

impl std::fmt::Display for Ts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.fmt_buf();
        f.write_str(std::str::from_utf8(&b).unwrap_or("1970-01-01T00:00:00Z"))
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.fmt_buf();
        s.serialize_str(std::str::from_utf8(&b).unwrap_or("0000-00-00"))
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.fmt_buf();
        s.serialize_str(std::str::from_utf8(&b).unwrap_or("1970-01-01T00:00:00Z"))
    }
}

impl Dec {
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl Serialize for Dec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            s.serialize_i64(self.0 / 100)
        } else {
            s.serialize_f64(self.0 as f64 / 100.0)
        }
    }
}

impl Serialize for Flt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0 as f64 / 100.0)
    }
}

/// JSON value of a hundredths amount, integral values as integers.
pub fn dec_value(v: i64) -> serde_json::Value {
    serde_json::to_value(Dec(v)).unwrap_or(serde_json::Value::Null)
}

/// Rounds `a * b / 100` (both in hundredths) to hundredths, half away from zero.
pub fn mul_hundredths(a: i64, b: i64) -> i64 {
    let p = i128::from(a) * i128::from(b);
    let q = if p >= 0 {
        (p + 50) / 100
    } else {
        (p - 50) / 100
    };
    q as i64
}

/// Percent of an amount, both in hundredths (`pct` 825 = 8.25 %), rounded to hundredths.
pub fn percent_of(amount: i64, pct: i64) -> i64 {
    let p = i128::from(amount) * i128::from(pct);
    let q = if p >= 0 {
        (p + 5000) / 10_000
    } else {
        (p - 5000) / 10_000
    };
    q as i64
}

/// A clock string for minutes after midnight: `3:00pm` (12h) or `15:00` (24h).
pub fn clock_string(minutes: u16, h24: bool) -> String {
    let h = u32::from(minutes / 60) % 24;
    let m = minutes % 60;
    if h24 {
        format!("{h:02}:{m:02}")
    } else {
        let (h12, suffix) = match h {
            0 => (12, "am"),
            1..=11 => (h, "am"),
            12 => (12, "pm"),
            _ => (h - 12, "pm"),
        };
        format!("{h12}:{m:02}{suffix}")
    }
}

/// A stable 64-bit mix of a value (splitmix64), used to derive per-record pseudo-random text.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// 32 lowercase hex characters derived from a seed (statement/client keys).
pub fn hex_key(seed: u64) -> String {
    format!(
        "{:016x}{:016x}",
        mix64(seed),
        mix64(seed ^ 0x5555_AAAA_5555_AAAA)
    )
}

/// Parses a strict ISO 8601 / RFC 3339 datetime with a `T` separator and an explicit zone
/// (`Z` or `±HH:MM`), as Harvest's `updated_since` requires. Returns unix seconds.
pub fn parse_strict_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[10] != b'T' {
        return None;
    }
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    Some(dt.timestamp())
}

/// Parses `YYYY-MM-DD` or `YYYYMMDD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let d = if s.len() == 8 && s.bytes().all(|c| c.is_ascii_digit()) {
        NaiveDate::parse_from_str(s, "%Y%m%d").ok()?
    } else if s.len() == 10 {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?
    } else {
        return None;
    };
    Some(Date::from_naive(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in (-1000..30_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(Date::ymd(2024, 2, 29).to_string(), "2024-02-29");
        assert_eq!(Ts(1_700_000_000).to_string(), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn decimals() {
        assert_eq!(serde_json::to_string(&Dec(10000)).unwrap(), "100");
        assert_eq!(serde_json::to_string(&Dec(10050)).unwrap(), "100.5");
        assert_eq!(serde_json::to_string(&Flt(10000)).unwrap(), "100.0");
        assert_eq!(serde_json::to_string(&Flt(1005)).unwrap(), "10.05");
        assert_eq!(mul_hundredths(150, 1999), 2999);
    }

    #[test]
    fn clocks() {
        assert_eq!(clock_string(15 * 60, false), "3:00pm");
        assert_eq!(clock_string(15 * 60, true), "15:00");
        assert_eq!(clock_string(9 * 60 + 5, false), "9:05am");
        assert_eq!(clock_string(12 * 60 + 30, false), "12:30pm");
    }

    #[test]
    fn strict_datetimes() {
        assert!(parse_strict_datetime("2024-01-01T00:00:00Z").is_some());
        assert!(parse_strict_datetime("2024-01-01T00:00:00+00:00").is_some());
        assert!(parse_strict_datetime("2024-01-01T00:00:00.123-05:00").is_some());
        assert!(parse_strict_datetime("2010-01-01 00:00:00+00:00").is_none());
        assert!(parse_strict_datetime("2024-01-01T00:00:00").is_none());
        assert!(parse_strict_datetime("2024-01-01").is_none());
        assert!(parse_strict_datetime("yesterday").is_none());
    }
}
