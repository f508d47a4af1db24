//! `--time`, checked before any engine runs: duplicity takes its own
//! time strings (its man page, "TIME FORMATS"; `dup_time.genstrtotime`),
//! restic a snapshot ID or `latest`. A value the engine would refuse, or
//! read as something else, is a usage error naming the formats.

use crate::engine::Kind;

/// What duplicity's `--time` takes.
pub const DUPLICITY_FORMATS: &str = "now, an interval (3D, 1h30m; s m h D W M Y), \
     an RFC 3339 time (2026-11-28T04:00:00Z), a date (2026-11-28, 2026/11/28, 11/28/2026) \
     or seconds since the epoch";

/// What restic's `--time` takes.
pub const RESTIC_FORMATS: &str = "a snapshot ID (8 to 64 hex digits, as status lists them) \
     or latest";

/// `Err` with why `time` is not a time `kind` takes.
pub fn check(kind: Kind, time: &str) -> Result<(), String> {
    let (fits, formats) = match kind {
        Kind::Duplicity => (duplicity(time), DUPLICITY_FORMATS),
        Kind::Restic => (restic(time), RESTIC_FORMATS),
    };
    match fits {
        true => Ok(()),
        false => Err(format!(
            "{time:?} is no time {} takes: give {formats}",
            kind.name()
        )),
    }
}

/// A snapshot ID (a prefix of 8 or more hex digits) or `latest`.
fn restic(time: &str) -> bool {
    time == "latest" || ((8..=64).contains(&time.len()) && time.bytes().all(hex))
}

/// Lowercase hex, as restic writes IDs (and matches them).
fn hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// One of duplicity's time strings.
fn duplicity(time: &str) -> bool {
    // ASCII only, so the slicing below is at character boundaries.
    time.is_ascii() && duplicity_ascii(time)
}

/// [`duplicity`] of an ASCII string.
fn duplicity_ascii(time: &str) -> bool {
    time == "now"
        || (!time.is_empty() && time.bytes().all(|b| b.is_ascii_digit()))
        || datetime(time)
        || interval(time)
        || date(time)
}

/// `YYYY-MM-DDTHH:MM:SS` with `Z`, `±HH:MM` or nothing (local time), or
/// duplicity's own `YYYYMMDDTHHMMSSZ`.
fn datetime(time: &str) -> bool {
    let Some((day, rest)) = time.split_once('T') else {
        return false;
    };
    if day.len() == 8 && rest.len() == 7 && rest.ends_with('Z') {
        let (y, m, d) = (&day[..4], &day[4..6], &day[6..]);
        let (h, mi, s) = (&rest[..2], &rest[2..4], &rest[4..6]);
        return ymd(y, m, d) && hms(h, mi, s);
    }
    let (clock, zone) = rest.split_at(rest.len().min(8));
    let day: Vec<&str> = day.split('-').collect();
    let clock: Vec<&str> = clock.split(':').collect();
    let zone_fits = match zone.as_bytes() {
        b"" | b"Z" => true,
        [b'+' | b'-', ..] if zone.len() == 6 => {
            number(&zone[1..3], 0, 23) && &zone[3..4] == ":" && number(&zone[4..], 0, 59)
        }
        _ => false,
    };
    matches!((&day[..], &clock[..]), ([y, m, d], [h, mi, s])
        if y.len() == 4 && ymd(y, m, d) && hms(h, mi, s))
        && zone_fits
}

/// `YYYY-MM-DD`, `YYYY/MM/DD`, `MM/DD/YYYY`, `MM-DD-YYYY` (one or two
/// digits for month and day).
fn date(time: &str) -> bool {
    let parts: Vec<&str> = time.split(['-', '/']).collect();
    match parts[..] {
        [y, m, d] if y.len() == 4 => m.len() <= 2 && d.len() <= 2 && ymd(y, m, d),
        [m, d, y] if y.len() == 4 => m.len() <= 2 && d.len() <= 2 && ymd(y, m, d),
        _ => false,
    }
}

/// A series of `<number><unit>` pairs, units `s m h D W M Y`.
fn interval(time: &str) -> bool {
    let mut rest = time;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit = rest.as_bytes().get(digits);
        if digits == 0 || !unit.is_some_and(|u| b"smhDWMY".contains(u)) {
            return false;
        }
        rest = &rest[digits + 1..];
    }
    time.len() >= 2
}

/// A date duplicity accepts (its years 1901 to 2099).
fn ymd(y: &str, m: &str, d: &str) -> bool {
    number(y, 1901, 2099) && number(m, 1, 12) && number(d, 1, 31)
}

/// A time of day (a leap second included, as duplicity takes it).
fn hms(h: &str, m: &str, s: &str) -> bool {
    number(h, 0, 23) && number(m, 0, 59) && number(s, 0, 61)
}

/// Digits only, between `low` and `high`.
fn number(text: &str, low: u32, high: u32) -> bool {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits && text.parse().is_ok_and(|n: u32| (low..=high).contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicity_takes_its_time_formats_and_nothing_else() {
        for good in [
            "now",
            "1732930000",
            "3D",
            "1h30m",
            "2W",
            "1Y2M",
            "2026-11-28T04:00:00Z",
            "2026-11-28T04:00:00+02:00",
            "2026-11-28T04:00:00",
            "20261128T040000Z",
            "2026-11-28",
            "2026/11/28",
            "2026-3-5",
            "11/28/2026",
            "03-05-2026",
        ] {
            assert_eq!(check(Kind::Duplicity, good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "garbage",
            "3d",
            "D",
            "3D ",
            "2026-11-28T04:00:00+é:0",
            "yesterday",
            "2026-13-01",
            "2026-11-28T25:00:00Z",
            "2026-11-28T04:00:00+2",
            "28.11.2026",
            "latest",
            "deadbeef",
            "1800-01-01",
        ] {
            assert!(check(Kind::Duplicity, bad).is_err(), "{bad}");
        }
        assert_eq!(
            check(Kind::Duplicity, "garbage"),
            Err(format!(
                "\"garbage\" is no time duplicity takes: give {DUPLICITY_FORMATS}"
            ))
        );
    }

    #[test]
    fn restic_takes_a_snapshot_id_or_latest() {
        for good in ["latest", "deadbeef", &"a".repeat(64)] {
            assert_eq!(check(Kind::Restic, good), Ok(()), "{good}");
        }
        for bad in [
            "3D",
            "2026-11-28",
            "deadbee",
            "DEADBEEF",
            "now",
            &"a".repeat(65),
        ] {
            assert!(check(Kind::Restic, bad).is_err(), "{bad}");
        }
    }
}
