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

/// The calendar month (UTC) that holds `ms`: its year, its month (1-12), and its bounds in
/// milliseconds since the epoch, `[start, end)`. Archive partitions are cut at these bounds.
pub fn utc_month(ms: i64) -> UtcMonth {
    let (year, month, _) = civil_from_days(ms.div_euclid(86_400_000));
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    UtcMonth {
        year,
        month,
        start_ms: days_from_civil(year, month, 1) * 86_400_000,
        end_ms: days_from_civil(next_year, next_month, 1) * 86_400_000,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcMonth {
    pub year: i64,
    pub month: u32,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A proleptic Gregorian date to days since 1970-01-01 (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    #[test]
    fn months_have_their_bounds() {
        // 2026-11-22 12:00 UTC: November 2026.
        let november = utc_month(1_795_348_800_000);
        assert_eq!((november.year, november.month), (2026, 11));
        assert_eq!(format_datetime(november.start_ms, 0), "2026-11-01 00:00:00");
        assert_eq!(format_datetime(november.end_ms, 0), "2026-12-01 00:00:00");
        // December rolls into the next year; February of a leap year has 29 days.
        let december = utc_month(november.end_ms);
        assert_eq!(format_datetime(december.end_ms, 0), "2027-01-01 00:00:00");
        let february = utc_month(951_782_400_000);
        assert_eq!(february.end_ms - february.start_ms, 29 * 86_400_000);
        // The last millisecond of a month is in it; the next is not.
        assert_eq!(utc_month(november.end_ms - 1), november);
        for days in [-800_000, -1, 0, 59, 10_957, 20_000, 2_000_000] {
            assert_eq!(days_from_civil_of(days), days);
        }
    }

    fn days_from_civil_of(days: i64) -> i64 {
        let (year, month, day) = civil_from_days(days);
        days_from_civil(year, month, day)
    }
}
