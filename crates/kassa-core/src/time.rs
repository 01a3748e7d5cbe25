//! Calendar arithmetic for timestamps shown to merchants (`payTime`), without a clock:
//! callers pass milliseconds since the Unix epoch and a UTC offset.

/// `yyyy-MM-dd HH:mm:ss` for `ms` shifted by `offset_seconds` (0 = UTC).
pub fn format_datetime(ms: i64, offset_seconds: i32) -> String {
    let seconds = ms.div_euclid(1000) + i64::from(offset_seconds);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_datetime(0, 0), "1970-01-01 00:00:00");
        assert_eq!(format_datetime(1_700_000_000_999, 0), "2023-11-14 22:13:20");
        assert_eq!(format_datetime(951_782_400_000, 0), "2000-02-29 00:00:00");
        assert_eq!(
            format_datetime(1_700_000_000_000, 3600),
            "2023-11-14 23:13:20"
        );
        assert_eq!(format_datetime(-1_000, 0), "1969-12-31 23:59:59");
    }
}
