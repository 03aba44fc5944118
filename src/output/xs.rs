//! The two XML Schema value types the manifest carries, written and read back:
//! `xs:duration` (seconds) and `xs:dateTime` (UTC instants). Reading accepts what writing
//! produces (and the common forms around it); anything else is `None`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `secs` as an xs:duration, e.g. `PT1H2M3.5S`, to the millisecond; negative or NaN as 0.
pub(crate) fn duration(secs: f64) -> String {
    let ms = if secs > 0.0 {
        (secs * 1000.0).round() as u64
    } else {
        0
    };
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    let mut out = String::from("PT");
    if h > 0 {
        let _ = write!(out, "{h}H");
    }
    if m > 0 {
        let _ = write!(out, "{m}M");
    }
    if ms % 1000 > 0 {
        let _ = write!(out, "{s}.{:03}", ms % 1000);
        out.truncate(out.trim_end_matches('0').len());
        out.push('S');
    } else if s > 0 || ms == 0 {
        let _ = write!(out, "{s}S");
    }
    out
}

/// Seconds of an xs:duration of days, hours, minutes and seconds (`P1DT2H`, `PT3.5S`);
/// `None` for years or months (no fixed length), a sign, or anything malformed.
pub(crate) fn parse_duration(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut secs = 0.0;
    let mut fields = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        let mut allowed = units;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let at = allowed.iter().position(|&(u, _)| u == c)?;
            secs += number.parse::<f64>().ok()? * allowed[at].1;
            number.clear();
            allowed = &allowed[at + 1..];
        }
        number.is_empty().then_some(())
    };
    fields(days, &[('D', 86_400.0)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        fields(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (!rest.is_empty() && secs.is_finite()).then_some(secs)
}

/// `t` as an xs:dateTime in UTC, e.g. `2023-11-14T22:13:20.5Z` (milliseconds when not 0);
/// instants before 1970 as the epoch.
pub(crate) fn date_time(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, ms) = (since.as_secs(), since.subsec_millis());
    let (year, month, day) = civil_from_days(secs / 86_400);
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    if ms > 0 {
        let _ = write!(out, ".{ms:03}");
        out.truncate(out.trim_end_matches('0').len());
    }
    out.push('Z');
    out
}

/// `t` as an ISO 8601 date-time in UTC with milliseconds always written, e.g.
/// `2023-11-14T22:13:20.500Z` (HLS `#EXT-X-PROGRAM-DATE-TIME`).
pub(crate) fn date_time_ms(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = date_time(UNIX_EPOCH + Duration::from_secs(since.as_secs()));
    let stem = whole.strip_suffix('Z').unwrap_or(&whole);
    format!("{stem}.{:03}Z", since.subsec_millis())
}

/// The instant of an xs:dateTime in UTC (`Z`) from 1970 on, e.g. `2023-11-14T22:13:20.5Z`;
/// `None` for another zone, no zone (local time is unknown here), or anything malformed.
pub(crate) fn parse_date_time(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<u64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.splitn(3, ':');
    let (h, m) = (
        time.next()?.parse::<u64>().ok()?,
        time.next()?.parse::<u64>().ok()?,
    );
    let s = time.next()?.parse::<f64>().ok()?;
    let valid = (1970..10_000).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && h < 24
        && m < 60
        && (0.0..60.0).contains(&s);
    if !valid {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let whole = days * 86_400 + h * 3600 + m * 60;
    Some(UNIX_EPOCH + Duration::from_secs(whole) + Duration::from_secs_f64(s))
}

/// (year, month, day) of the Gregorian date `days` after 1970-01-01: H. Hinnant's
/// `civil_from_days`, in eras of 400 years (146097 days) counted from 0000-03-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (era * 400 + yoe + u64::from(month <= 2), month, day)
}

/// Days from 1970-01-01 to a Gregorian date from 1970 on: the inverse of
/// [`civil_from_days`] (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let (era, yoe) = (y / 400, y % 400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations() {
        let dates = [0, 1_700_000_000_000, 951_782_400_120, 4_107_542_399_000];
        let dates = dates.map(|ms| date_time(UNIX_EPOCH + Duration::from_millis(ms)));
        let want = "1970-01-01T00:00:00Z 2023-11-14T22:13:20Z 2000-02-29T00:00:00.12Z 2100-02-28T23:59:59Z";
        assert_eq!(dates.join(" "), want);
        assert_eq!(
            date_time(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
        let durations = [0.0, 12.345, 60.0, 3725.5, 7200.25, -1.0, f64::NAN].map(duration);
        assert_eq!(
            durations.join(" "),
            "PT0S PT12.345S PT1M PT1H2M5.5S PT2H0.25S PT0S PT0S"
        );
    }

    #[test]
    fn what_is_written_reads_back() {
        for ms in [0, 1_700_000_000_000, 951_782_400_120, 4_107_542_399_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let back = parse_date_time(&date_time(t)).expect("parses");
            let off = back.duration_since(t).unwrap_or_else(|e| e.duration());
            assert!(off < Duration::from_micros(1), "{ms}: {off:?}");
        }
        for secs in [0.0, 12.345, 60.0, 3725.5, 7200.25, 90_061.0] {
            let back = parse_duration(&duration(secs)).expect("parses");
            assert!((back - secs).abs() < 1e-9, "{secs} -> {back}");
        }
        assert_eq!(parse_duration("P1DT1S"), Some(86_401.0));
    }

    #[test]
    fn what_is_not_ours_reads_as_none() {
        let durations = [
            "", "P", "PT", "P1Y", "P1M", "-PT1S", "PT1S2", "PT1M1H", "T1S", "PTxS",
        ];
        for d in durations {
            assert_eq!(parse_duration(d), None, "{d:?}");
        }
        let dates = [
            "",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20+01:00",
            "2023-13-14T22:13:20Z",
            "1969-12-31T23:59:59Z",
            "2023-11-14 22:13:20Z",
            "2023-11-14T24:00:00Z",
        ];
        for d in dates {
            assert_eq!(parse_date_time(d), None, "{d:?}");
        }
    }
}
