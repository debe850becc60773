//! Report windows: Harvest refuses a report span over 365 days (inclusive), so a leap year's
//! 366 days is one day too many. Windows start at the first day and follow each other.

use chrono::{Days, NaiveDate};

/// The longest span Harvest accepts, in days, both ends included.
pub const MAX_DAYS: u64 = 365;

/// The windows covering `start..=today`, each at most [`MAX_DAYS`] days, the last ending today.
pub fn windows(start: NaiveDate, today: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut from = start;
    while from <= today {
        let to = from
            .checked_add_days(Days::new(MAX_DAYS - 1))
            .map_or(today, |t| t.min(today));
        out.push((from, to));
        match to.checked_add_days(Days::new(1)) {
            Some(next) => from = next,
            None => break,
        }
    }
    out
}

/// A date as the Reports API takes it.
pub fn param(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_are_at_most_365_days_and_contiguous() {
        let w = windows(d("2023-03-01"), d("2026-11-21"));
        assert_eq!(w.len(), 4);
        assert_eq!(w[0], (d("2023-03-01"), d("2024-02-28")));
        // 2024-02-29 to 2025-02-27: a leap-year window that is still 365 days inclusive.
        assert_eq!(w[1], (d("2024-02-29"), d("2025-02-27")));
        assert_eq!(w.last().unwrap().1, d("2026-11-21"));
        for (from, to) in &w {
            assert!((*to - *from).num_days() < MAX_DAYS as i64);
        }
        for pair in w.windows(2) {
            assert_eq!(pair[0].1.succ_opt().unwrap(), pair[1].0);
        }
        assert!(windows(d("2030-01-01"), d("2026-01-01")).is_empty());
        assert_eq!(
            windows(d("2026-01-01"), d("2026-01-01")),
            vec![(d("2026-01-01"), d("2026-01-01"))]
        );
        assert_eq!(param(d("2024-02-29")), "20240229");
    }
}
