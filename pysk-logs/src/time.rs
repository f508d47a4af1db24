//! Apache's `%t` timestamps: `dd/Mon/yyyy:HH:MM:SS +hhmm`.
//!
//! Parsing gives the instant as seconds since the Unix epoch, so lines
//! written with different offsets compare by when they happened; formatting
//! writes an instant back in UTC (`+0000`). Both are on the hot path of
//! `split` and `merge`, so they work on bytes and do no allocation.

use pysk_common::date::{civil_from_days, days_from_civil};

/// The length of a timestamp between the brackets.
pub const LEN: usize = 26;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn digits<const N: usize>(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b.get(..N)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn month(b: &[u8]) -> Option<i64> {
    MONTHS
        .iter()
        .position(|m| m.as_slice() == b)
        .and_then(|i| i64::try_from(i + 1).ok())
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The days of `month` (1 to 12) in `year`, leap years as the Gregorian
/// calendar has them.
pub(crate) fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses the 26 bytes between `[` and `]` into seconds since the epoch, or
/// `None` when they are not a valid date and time with a valid offset.
pub fn parse(b: &[u8]) -> Option<i64> {
    if b.len() != LEN
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
        || b[20] != b' '
    {
        return None;
    }
    let day = digits::<2>(&b[0..])?;
    let mon = month(&b[3..6])?;
    let year = digits::<4>(&b[7..])?;
    let hour = digits::<2>(&b[12..])?;
    let min = digits::<2>(&b[15..])?;
    let sec = digits::<2>(&b[18..])?;
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let off_h = digits::<2>(&b[22..])?;
    let off_m = digits::<2>(&b[24..])?;
    if day < 1
        || day > days_in_month(year, mon)
        || hour > 23
        || min > 59
        || sec > 60
        || off_h > 14
        || off_m > 59
    {
        return None;
    }
    let local = days_from_civil(year, mon, day) * 86_400 + hour * 3600 + min * 60 + sec;
    Some(local - sign * (off_h * 3600 + off_m * 60))
}

/// Parses timestamps like [`parse`], remembering the last date and offset:
/// the lines of a log share them for hours, so most lines only need their
/// time of day read.
#[derive(Debug, Clone, Default)]
pub struct DayCache {
    day: [u8; 11],
    zone: [u8; 6],
    /// The instant of 00:00:00 of the cached day in its offset.
    midnight: Option<i64>,
}

impl DayCache {
    /// The instant of the 26 bytes between `[` and `]`, or `None` when they
    /// are not a valid timestamp.
    pub fn parse(&mut self, b: &[u8]) -> Option<i64> {
        if let Some(midnight) = self.midnight
            && b.len() == LEN
            && b[..11] == self.day
            && b[20..] == self.zone
            && b[11] == b':'
            && b[14] == b':'
            && b[17] == b':'
        {
            let hour = digits::<2>(&b[12..])?;
            let min = digits::<2>(&b[15..])?;
            let sec = digits::<2>(&b[18..])?;
            if hour > 23 || min > 59 || sec > 60 {
                return None;
            }
            return Some(midnight + hour * 3600 + min * 60 + sec);
        }
        let t = parse(b)?;
        let hour = digits::<2>(&b[12..])?;
        let min = digits::<2>(&b[15..])?;
        let sec = digits::<2>(&b[18..])?;
        self.day.copy_from_slice(&b[..11]);
        self.zone.copy_from_slice(&b[20..]);
        self.midnight = Some(t - (hour * 3600 + min * 60 + sec));
        Some(t)
    }
}

/// Writes `epoch` as `dd/Mon/yyyy:HH:MM:SS +0000` (26 bytes) into `out`.
pub fn format_utc(epoch: i64, out: &mut [u8; LEN]) {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let two = |v: i64, o: &mut [u8]| {
        o[0] = b'0' + (v / 10 % 10) as u8;
        o[1] = b'0' + (v % 10) as u8;
    };
    two(d, &mut out[0..2]);
    out[2] = b'/';
    let month_index = usize::try_from(m - 1).unwrap_or(0).min(11);
    out[3..6].copy_from_slice(MONTHS[month_index]);
    out[6] = b'/';
    let y = y.clamp(0, 9999);
    two(y / 100, &mut out[7..9]);
    two(y % 100, &mut out[9..11]);
    out[11] = b':';
    two(secs / 3600, &mut out[12..14]);
    out[14] = b':';
    two(secs / 60 % 60, &mut out[15..17]);
    out[17] = b':';
    two(secs % 60, &mut out[18..20]);
    out[20..].copy_from_slice(b" +0000");
}

/// Formats instants like [`format_utc`], remembering the last one: lines
/// near in time share their day, and then only the time of day is written.
#[derive(Debug, Clone)]
pub struct UtcCache {
    time: i64,
    day: i64,
    text: [u8; LEN],
}

impl Default for UtcCache {
    fn default() -> UtcCache {
        let mut text = [0; LEN];
        format_utc(0, &mut text);
        UtcCache {
            time: 0,
            day: 0,
            text,
        }
    }
}

impl UtcCache {
    /// `epoch` as `dd/Mon/yyyy:HH:MM:SS +0000`.
    pub fn format(&mut self, epoch: i64) -> &[u8; LEN] {
        if epoch != self.time {
            let day = epoch.div_euclid(86_400);
            if day == self.day {
                let secs = epoch.rem_euclid(86_400);
                for (at, v) in [(12, secs / 3600), (15, secs / 60 % 60), (18, secs % 60)] {
                    self.text[at] = b'0' + (v / 10) as u8;
                    self.text[at + 1] = b'0' + (v % 10) as u8;
                }
            } else {
                format_utc(epoch, &mut self.text);
                self.day = day;
            }
            self.time = epoch;
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(epoch: i64) -> String {
        let mut buf = [0u8; LEN];
        format_utc(epoch, &mut buf);
        String::from_utf8(buf.to_vec()).expect("ascii")
    }

    #[test]
    fn parses_with_offsets_to_the_same_instant() {
        let a = parse(b"17/May/2015:10:05:03 +0000").expect("valid");
        assert_eq!(a, 1_431_857_103);
        assert_eq!(parse(b"17/May/2015:12:05:03 +0200"), Some(a));
        assert_eq!(parse(b"17/May/2015:04:35:03 -0530"), Some(a));
        assert_eq!(parse(b"01/Jan/1970:00:00:00 +0000"), Some(0));
        assert_eq!(parse(b"29/Feb/2024:23:59:59 +0000"), Some(1_709_251_199));
    }

    #[test]
    fn rejects_impossible_dates_and_malformed_text() {
        for bad in [
            &b"30/Feb/2024:00:00:00 +0000"[..],
            b"29/Feb/2023:00:00:00 +0000",
            b"17/Mai/2015:10:05:03 +0000",
            b"17/May/2015:24:05:03 +0000",
            b"17/May/2015:10:60:03 +0000",
            b"17/May/2015:10:05:03 +2500",
            b"17/May/2015:10:05:03 0000",
            b"17/May/2015:10:05:03",
            b"17/May/2015 10:05:03 +0000",
            b"1x/May/2015:10:05:03 +0000",
            b"00/May/2015:10:05:03 +0000",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn day_cache_agrees_with_a_full_parse() {
        let mut cache = DayCache::default();
        for text in [
            &b"17/May/2015:10:05:03 +0200"[..],
            b"17/May/2015:10:05:04 +0200",
            b"17/May/2015:23:59:60 +0200",
            b"17/May/2015:00:00:00 +0200",
            b"17/May/2015:00:00:00 -0700",
            b"18/May/2015:00:00:00 -0700",
            b"18/May/2015:24:00:00 -0700",
            b"18/May/2015:1x:00:00 -0700",
            b"18/May/2015 10:00:00 -0700",
        ] {
            assert_eq!(
                cache.parse(text),
                parse(text),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn the_cache_formats_like_format_utc() {
        let mut cache = UtcCache::default();
        let mut t = 1_431_820_000i64;
        for step in [
            0,
            1,
            59,
            3600,
            86_399,
            1,
            86_400 * 40,
            -86_401,
            -7,
            0,
            12_345,
        ] {
            for _ in 0..50 {
                t += step;
                assert_eq!(cache.format(t), utc(t).as_bytes(), "{t}");
            }
        }
        assert_eq!(cache.format(0), utc(0).as_bytes());
        assert_eq!(cache.format(-1), utc(-1).as_bytes());
    }

    #[test]
    fn formats_utc_and_round_trips() {
        assert_eq!(utc(1_431_857_103), "17/May/2015:10:05:03 +0000");
        assert_eq!(utc(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(utc(1_709_251_199), "29/Feb/2024:23:59:59 +0000");
        for epoch in (0..4_000_000_000i64).step_by(86_399 * 37) {
            let text = utc(epoch);
            assert_eq!(parse(text.as_bytes()), Some(epoch), "{text}");
        }
    }
}
