//! RFC 3339 timestamps without a date crate.
//!
//! Two places need "now" as text (OCI state `created`, log lines, generated
//! image configs) and nothing else of a calendar, so Howard Hinnant's
//! civil-from-days algorithm (public domain, exact for the proleptic
//! Gregorian calendar) is cheaper than a dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SSZ`, or with `nanos` nine
/// fraction digits before the `Z`. A time before 1970 prints as the epoch,
/// as the callers have always done for a clock set that far back.
pub fn rfc3339(t: SystemTime, nanos: bool) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if nanos {
        let ns = since.subsec_nanos();
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ns:09}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// `(year, month, day)` of `days` since 1970-01-01 (Howard Hinnant).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(at(0, 0), false), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400, 0), false), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(951_868_799, 0), false), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(at(951_868_800, 0), false), "2000-03-01T00:00:00Z");
        assert_eq!(rfc3339(at(4_107_542_400, 0), false), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn nanos_are_nine_digits() {
        assert_eq!(rfc3339(at(0, 5), true), "1970-01-01T00:00:00.000000005Z");
        assert_eq!(
            rfc3339(at(1_700_000_000, 123_456_789), true),
            "2023-11-14T22:13:20.123456789Z"
        );
        // Seconds only: the fraction is dropped, not rounded.
        assert_eq!(rfc3339(at(0, 999_999_999), false), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn before_epoch_is_the_epoch() {
        let t = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339(t, true), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn now_has_the_right_shape() {
        let t = rfc3339(SystemTime::now(), true);
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
        assert_eq!(rfc3339(SystemTime::now(), false).len(), 20);
    }
}
