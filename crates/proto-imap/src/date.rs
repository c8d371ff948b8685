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

/// `date-day "-" date-month "-" date-year` (e.g. `1-Feb-1994`) as days.
pub fn parse_date(s: &[u8]) -> Option<i64> {
    let mut it = s.split(|&b| b == b'-');
    let d = num(it.next()?.trim_ascii_start())?;
    let m = month_number(it.next()?)?;
    let y = num(it.next()?)?;
    if it.next().is_some() || !(1..=31).contains(&d) || y < 1 {
        return None;
    }
    Some(days_from_civil(y, m, d as u32))
}

/// `date-time` of APPEND: `"dd-Mon-yyyy hh:mm:ss +zzzz"` (without the
/// quotes; the day may be space-padded) as unix seconds.
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
    let (h, mi, se) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
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
    let offset = sign * ((z / 100) * 3600 + (z % 100) * 60);
    Some(day * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// A search date as sent by a client: `d-Mon-yyyy` (the inverse of
/// [`parse_date`] for years 1 to 9999).
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS.get(m as usize - 1).copied().unwrap_or("Jan");
    format!("{d}-{month}-{y:04}")
}

/// INTERNALDATE as sent: `"dd-Mon-yyyy hh:mm:ss +0000"` (UTC).
pub fn format_date_time(secs: i64) -> String {
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
}
