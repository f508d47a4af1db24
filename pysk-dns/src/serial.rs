//! SOA serials that change only when a zone's content changes, and never
//! go backwards.
//!
//! The state file (`<state>/serials.json`) keeps, per zone, the serial
//! and a SHA-256 of the zone file without its serial. A new serial is
//! `max(YYYYMMDD01 of today, old + 1)` in RFC 1982 arithmetic, so it stays
//! monotonic past 99 changes a day. Zones that disappear keep their entry:
//! if one comes back, its serial must still be higher than the one
//! secondaries last saw.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use pysk_common::date::{self, civil_from_days};

use crate::error::DnsError;
use crate::render::ZoneText;
use crate::state;

/// What is recorded about one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The serial last written.
    pub serial: u32,
    /// SHA-256 (hex) of the zone file without the serial.
    pub sha256: String,
}

/// All zones' serials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// By zone name.
    pub zones: BTreeMap<String, Entry>,
}

/// Where the serials live.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("serials.json")
}

impl State {
    /// Reads the state file; empty when there is none yet.
    pub fn load(state_dir: &Path) -> Result<State, DnsError> {
        state::load_json(path(state_dir))
    }

    /// The state file's content: what [`State::save`] writes, and what
    /// `build --dry-run` shows in its diff.
    pub fn text(&self) -> Result<String, DnsError> {
        state::json_text(self, "serials")
    }

    /// Replaces the state file atomically (nothing is written when it
    /// already holds this).
    pub fn save(&self, state_dir: &Path) -> Result<(), DnsError> {
        state::save_json(&path(state_dir), self, "serials")
    }

    /// Raises `zone`'s recorded serial to `seen`, the serial in its file
    /// as it is, when that is higher (RFC 1982): a state restored from an
    /// older backup, or lost, never hands out a serial secondaries have
    /// passed. `same` when the file holds exactly `text` with `seen`: then
    /// `seen` stays its serial; otherwise the next change goes above it.
    pub fn at_least(&mut self, zone: &str, seen: u32, text: &ZoneText, same: bool) {
        if self
            .zones
            .get(zone)
            .is_some_and(|e| !serial_gt(seen, e.serial))
        {
            return;
        }
        let sha256 = if same {
            content_hash(text)
        } else {
            String::new()
        };
        self.zones.insert(
            zone.to_owned(),
            Entry {
                serial: seen,
                sha256,
            },
        );
    }

    /// The serial for `zone` with content `text`, updating the entry when
    /// the content changed. `today` is `YYYYMMDD`.
    pub fn serial_for(&mut self, zone: &str, text: &ZoneText, today: u32) -> u32 {
        let hash = content_hash(text);
        match self.zones.get_mut(zone) {
            Some(e) if e.sha256 == hash => e.serial,
            Some(e) => {
                e.serial = next(Some(e.serial), today);
                e.sha256 = hash;
                e.serial
            }
            None => {
                let serial = next(None, today);
                self.zones.insert(
                    zone.to_owned(),
                    Entry {
                        serial,
                        sha256: hash,
                    },
                );
                serial
            }
        }
    }
}

/// The serial recorded for `zone` (any case, with or without the trailing
/// dot) in the state of `state_dir`, for `pysk-dns serial`.
pub fn lookup(state_dir: &Path, zone: &str) -> Result<u32, DnsError> {
    let zone = crate::name::absolute(zone, crate::name::Rule::Service, false)
        .map_err(|why| pysk_common::Error::option("ZONE", format!("{zone:?}: {why}")))?;
    match State::load(state_dir)?.zones.get(&zone) {
        Some(entry) => Ok(entry.serial),
        None => Err(DnsError::NoSerial {
            zone,
            path: path(state_dir),
        }),
    }
}

/// SHA-256 (hex) of a zone file without its serial.
pub fn content_hash(text: &ZoneText) -> String {
    let mut h = Sha256::new();
    h.update(text.head.as_bytes());
    h.update(b"\0");
    h.update(text.tail.as_bytes());
    h.finalize()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether `a` is greater than `b` in serial number arithmetic
/// (RFC 1982, 32 bits).
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// The serial after `old` on the day `today` (`YYYYMMDD`).
pub fn next(old: Option<u32>, today: u32) -> u32 {
    let base = today.saturating_mul(100).saturating_add(1);
    match old {
        Some(old) if !serial_gt(base, old) => old.wrapping_add(1),
        _ => base,
    }
}

/// Today's date in UTC as `YYYYMMDD`.
pub fn today() -> u32 {
    let (y, m, d) = civil_from_days(date::today());
    u32::try_from(y * 10_000 + m * 100 + d).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_stay_monotonic_past_99_changes_a_day() {
        let day = 20261124;
        let mut s = next(None, day);
        assert_eq!(s, 2026112401);
        for _ in 0..120 {
            let n = next(Some(s), day);
            assert!(serial_gt(n, s));
            s = n;
        }
        assert_eq!(s, 2026112521);
        // The next day starts over at its own 01 only when that is higher.
        assert_eq!(next(Some(s), 20261125), 2026112522);
        assert_eq!(next(Some(2026112405), 20261125), 2026112501);
        // Wrapping past 2^32 - 1 is still an increase in RFC 1982 terms.
        assert!(serial_gt(next(Some(u32::MAX), 0), u32::MAX));
    }

    #[test]
    fn the_serial_changes_only_with_the_content() {
        let mut st = State::default();
        let t = |tail: &str| ZoneText {
            head: "h".into(),
            tail: tail.into(),
        };
        let a = st.serial_for("example.org", &t("a"), 20261124);
        assert_eq!(st.serial_for("example.org", &t("a"), 20261125), a);
        let b = st.serial_for("example.org", &t("b"), 20261125);
        assert_eq!(b, 2026112501);
        assert!(today() > 20_260_000);
    }

    #[test]
    fn a_higher_serial_in_the_file_wins_over_an_older_state() {
        let t = ZoneText {
            head: "h".into(),
            tail: "a".into(),
        };
        let mut st = State::default();
        assert_eq!(st.serial_for("example.org", &t, 20261124), 2026112401);
        // The file says 04 with the same content: 04 stays.
        st.at_least("example.org", 2026112404, &t, true);
        assert_eq!(st.serial_for("example.org", &t, 20261124), 2026112404);
        // The file says 09 with other content: the next serial is above it.
        st.at_least("example.org", 2026112409, &t, false);
        assert_eq!(st.serial_for("example.org", &t, 20261124), 2026112410);
        // A lower serial in the file changes nothing.
        st.at_least("example.org", 2026112402, &t, false);
        assert_eq!(st.serial_for("example.org", &t, 20261124), 2026112410);
    }
}
