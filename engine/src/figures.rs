//! How figures are shown, once for every table, mail and JSON row: a share
//! as a percentage with two decimals, a span as `2m13s` / `3h05m` / `2d04h`.

/// `part` of `whole` in percent, rounded to two decimals (0 of nothing is 0).
pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 10_000.0 / whole as f64).round() / 100.0
    }
}

/// A span in its two largest units: `45s`, `2m13s`, `3h05m`, `2d04h`.
pub fn compact_duration(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_to_two_decimals_and_spans_keep_two_units() {
        assert_eq!(pct(1, 3), 33.33);
        assert_eq!(pct(2, 3), 66.67);
        assert_eq!(pct(5, 0), 0.0);
        assert_eq!(compact_duration(15_400), "15s");
        assert_eq!(compact_duration(133_000), "2m13s");
        assert_eq!(compact_duration(3 * 3_600_000 + 300_000), "3h05m");
        assert_eq!(compact_duration(2 * 86_400_000 + 4 * 3_600_000), "2d04h");
        assert_eq!(compact_duration(-5), "0s");
    }
}
