//! Dates of the IMAP grammar (RFC 9051 9: date, date-time) without a clock
//! or a time-zone database: conversions between civil dates and days since
//! 1970-01-01 (Howard Hinnant's algorithms).

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date (year, month 1-12, day 1-31) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn month_number(m: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|x| x.as_bytes().eq_ignore_ascii_case(m))
        .map(|p| p as u32 + 1)
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 4 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Days in month `m` (1-12) of year `y`, proleptic Gregorian.
fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// The first and last second a date-time can say: RFC 9051 9 `date-year =
/// 4DIGIT`, so years 0001 to 9999 (year 0 does not exist in the calendar
/// IMAP uses). An APPEND date outside it, once converted to UTC, is
/// refused: it could not be sent back as INTERNALDATE.
pub const MIN_DATE_TIME: i64 = -62_135_596_800; // 01-Jan-0001 00:00:00 +0000
pub const MAX_DATE_TIME: i64 = 253_402_300_799; // 31-Dec-9999 23:59:59 +0000

/// Largest zone offset accepted: `zone = ("+" / "-") 4DIGIT` is hhmm
/// (RFC 9051 9, as RFC 5322 3.3), so hours 00-23 and minutes 00-59.
const MAX_ZONE_HOURS: i64 = 23;
const MAX_ZONE_MINUTES: i64 = 59;

/// `date-day "-" date-month "-" date-year` (e.g. `1-Feb-1994`) as days;
/// the day must exist in that month (no 31-Feb).
pub fn parse_date(s: &[u8]) -> Option<i64> {
    let mut it = s.split(|&b| b == b'-');
    let d = num(it.next()?.trim_ascii_start())?;
    let m = month_number(it.next()?)?;
    let year = it.next()?;
    // date-year = 4DIGIT (RFC 9051 9).
    if year.len() != 4 {
        return None;
    }
    let y = num(year)?;
    if it.next().is_some() || y < 1 || !(1..=i64::from(days_in_month(y, m))).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d as u32))
}

/// `date-time` of APPEND: `"dd-Mon-yyyy hh:mm:ss +zzzz"` (without the
/// quotes; the day may be space-padded) as unix seconds. None for a date
/// that does not exist, a zone out of range, or a UTC instant outside
/// [`MIN_DATE_TIME`]..=[`MAX_DATE_TIME`].
pub fn parse_date_time(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii_start();
    let mut parts = s.split(|&b| b == b' ');
    let day = parse_date(parts.next()?)?;
    let time = parts.next()?;
    let zone = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let mut t = time.split(|&b| b == b':');
    let mut two = || t.next().filter(|f| f.len() == 2).and_then(num);
    let (h, mi, se) = (two()?, two()?, two()?);
    if t.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let (sign, digits) = zone.split_first()?;
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if digits.len() != 4 {
        return None;
    }
    let z = num(digits)?;
    let (zh, zm) = (z / 100, z % 100);
    if zh > MAX_ZONE_HOURS || zm > MAX_ZONE_MINUTES {
        return None;
    }
    let offset = sign * (zh * 3600 + zm * 60);
    let secs = day * 86400 + h * 3600 + mi * 60 + se - offset;
    (MIN_DATE_TIME..=MAX_DATE_TIME)
        .contains(&secs)
        .then_some(secs)
}

/// A search date as sent by a client: `d-Mon-yyyy` (the inverse of
/// [`parse_date`] for years 1 to 9999).
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS.get(m as usize - 1).copied().unwrap_or("Jan");
    format!("{d}-{month}-{y:04}")
}

/// INTERNALDATE as sent: `"dd-Mon-yyyy hh:mm:ss +0000"` (UTC), always an
/// RFC 9051 date-time: an instant outside the 4-digit years (a clock gone
/// wrong, an old store) is sent as the nearest one that fits.
pub fn format_date_time(secs: i64) -> String {
    let secs = secs.clamp(MIN_DATE_TIME, MAX_DATE_TIME);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS.get(m as usize - 1).copied().unwrap_or("Jan");
    format!(
        "{d:02}-{month}-{y:04} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(parse_date(b"1-Feb-1994"), Some(days_from_civil(1994, 2, 1)));
        assert_eq!(parse_date(b"31-Xyz-1994"), None);
        let d = days_from_civil(2024, 2, 29);
        assert_eq!(format_date(d), "29-Feb-2024");
        assert_eq!(parse_date(format_date(d).as_bytes()), Some(d));
    }

    #[test]
    fn append_date_time_with_zone() {
        // RFC 9051 6.3.12 example.
        let t = parse_date_time(b" 7-Feb-1994 21:52:25 -0800").unwrap();
        assert_eq!(format_date_time(t), "08-Feb-1994 05:52:25 +0000");
        assert!(parse_date_time(b"7-Feb-1994 25:00:00 +0000").is_none());
    }

    #[test]
    fn dates_that_do_not_exist_are_refused() {
        for bad in [
            &b"31-Feb-2024 00:00:00 +0000"[..],
            b"29-Feb-2023 00:00:00 +0000",
            b"31-Apr-2024 00:00:00 +0000",
            b"01-Jan-10000 00:00:00 +0000",
            b"01-Jan-0000 00:00:00 +0000",
            b"01-Jan-94 00:00:00 +0000",
            b"01-Jan-2024 1:00:00 +0000",
        ] {
            assert_eq!(
                parse_date_time(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_date_time(b"29-Feb-2024 00:00:00 +0000").is_some());
        assert!(parse_date_time(b"29-Feb-2000 00:00:00 +0000").is_some());
        assert!(parse_date_time(b"29-Feb-1900 00:00:00 +0000").is_none());
    }

    #[test]
    fn zones_out_of_range_are_refused() {
        for bad in [&b"+2400"[..], b"-9999", b"+0060", b"+12345", b"0100"] {
            let mut line = b"01-Jan-2024 00:00:00 ".to_vec();
            line.extend_from_slice(bad);
            assert_eq!(
                parse_date_time(&line),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_date_time(b"01-Jan-2024 00:00:00 +2359").is_some());
        assert!(parse_date_time(b"01-Jan-2024 00:00:00 -1200").is_some());
    }

    #[test]
    fn utc_instants_past_the_four_digit_years_are_refused() {
        // Valid as written, but year 10000 (or 0) once in UTC.
        assert_eq!(parse_date_time(b"31-Dec-9999 23:59:59 -0100"), None);
        assert_eq!(parse_date_time(b"01-Jan-0001 00:00:00 +0100"), None);
        let last = parse_date_time(b"31-Dec-9999 23:59:59 +0000").unwrap();
        assert_eq!(last, MAX_DATE_TIME);
        assert_eq!(format_date_time(last), "31-Dec-9999 23:59:59 +0000");
        assert_eq!(
            format_date_time(MIN_DATE_TIME),
            "01-Jan-0001 00:00:00 +0000"
        );
    }

    #[test]
    fn internaldate_is_always_a_date_time() {
        for secs in [i64::MIN, MIN_DATE_TIME - 1, 0, MAX_DATE_TIME + 1, i64::MAX] {
            let text = format_date_time(secs);
            assert!(parse_date_time(text.as_bytes()).is_some(), "{text}");
        }
    }
}
