//! The `--json` documents of `fetch` and `build`, printed by
//! `pysk_common::report::print_json` (which puts `"version": 1` first)
//! instead of the summary lines on stderr. The README lists their fields.

use std::path::PathBuf;

use serde::Serialize;

use crate::build::{Plan, Status};
use crate::fetch::Fate;

/// `fetch --json`: every server's fate, and how many fared how.
#[derive(Debug, Serialize)]
pub struct FetchSummary {
    /// Each server, in inventory order.
    pub servers: Vec<ServerReport>,
    /// How many servers fared how.
    pub counts: FetchCounts,
}

/// What became of one server.
#[derive(Debug, Serialize)]
pub struct ServerReport {
    /// The server's inventory name.
    pub server: String,
    /// `updated`, `unchanged`, `unreachable`, `rejected` or `held_back`.
    pub fate: &'static str,
    /// Whether its snapshot now holds the document it serves.
    pub good: bool,
    /// How many zones its document holds (a good fetch), or how many the
    /// kept snapshot has (held back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zones: Option<usize>,
    /// Why it is not good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether a previous snapshot is kept in place of its document (only
    /// for a server that is not good).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_snapshot: Option<bool>,
    /// The age of the kept snapshot, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_age_seconds: Option<u64>,
    /// What became of a damaged snapshot, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged_snapshot: Option<String>,
    /// The zones a held-back document would drop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

/// How many servers fared how.
#[derive(Debug, Default, Serialize)]
pub struct FetchCounts {
    /// Servers in the inventory.
    pub servers: usize,
    /// Servers whose snapshot holds what they serve now.
    pub good: usize,
    /// Of those, with a new or changed document.
    pub updated: usize,
    /// Of those, with the document already kept.
    pub unchanged: usize,
    /// Servers that could not be fetched.
    pub unreachable: usize,
    /// Servers whose document was rejected.
    pub rejected: usize,
    /// Servers whose document would drop most of their zones.
    pub held_back: usize,
}

/// The `fetch --json` document of `fates`.
pub fn fetch(fates: &[(String, Fate)]) -> FetchSummary {
    let servers: Vec<ServerReport> = fates
        .iter()
        .map(|(server, fate)| server_report(server, fate))
        .collect();
    let count = |name: &str| servers.iter().filter(|s| s.fate == name).count();
    let counts = FetchCounts {
        servers: servers.len(),
        good: servers.iter().filter(|s| s.good).count(),
        updated: count("updated"),
        unchanged: count("unchanged"),
        unreachable: count("unreachable"),
        rejected: count("rejected"),
        held_back: count("held_back"),
    };
    FetchSummary { servers, counts }
}

fn server_report(server: &str, fate: &Fate) -> ServerReport {
    let base = ServerReport {
        server: server.to_owned(),
        fate: fate.name(),
        good: !fate.is_problem(),
        zones: None,
        reason: None,
        kept_snapshot: None,
        snapshot_age_seconds: None,
        damaged_snapshot: None,
        dropped: Vec::new(),
    };
    match fate {
        Fate::Updated { zones } | Fate::Unchanged { zones } => ServerReport {
            zones: Some(*zones),
            ..base
        },
        Fate::Unreachable { reason, age } | Fate::Rejected { reason, age } => ServerReport {
            reason: Some(reason.clone()),
            kept_snapshot: Some(age.is_some()),
            snapshot_age_seconds: age.map(|a| a.as_secs()),
            ..base
        },
        Fate::HeldBack {
            dropped,
            total,
            age,
            ..
        } => ServerReport {
            zones: Some(*total),
            reason: fate.shrink(),
            kept_snapshot: Some(true),
            snapshot_age_seconds: Some(age.as_secs()),
            dropped: dropped.clone(),
            ..base
        },
        Fate::Damaged { note, then } => ServerReport {
            good: false,
            damaged_snapshot: Some(note.clone()),
            ..server_report(server, then)
        },
    }
}

/// `build --json`: every zone's fate, the files written and removed, the
/// reload, and the problems reported; with `--dry-run`, what the build
/// would do.
#[derive(Debug, Serialize)]
pub struct BuildSummary {
    /// Whether this was a dry run: then nothing was written, and `files`
    /// and `removed` are what the build would write and remove.
    pub dry_run: bool,
    /// Each zone, in build order.
    pub zones: Vec<ZoneReport>,
    /// The files written: zone files, the include, the serial state.
    pub files: Vec<PathBuf>,
    /// Stale zone files of our own that were removed.
    pub removed: Vec<PathBuf>,
    /// What `--reload` did; absent without `--reload`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadReport>,
    /// How many zones fared how, and how many files changed.
    pub counts: BuildCounts,
    /// Every warning of the run, as printed on stderr.
    pub problems: Vec<String>,
}

/// One zone.
#[derive(Debug, Serialize)]
pub struct ZoneReport {
    /// The zone.
    pub zone: String,
    /// `written`, `unchanged` or `not_written`.
    pub status: Status,
    /// Its serial (absent for a zone not written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    /// Its file.
    pub file: PathBuf,
}

/// What `--reload` did.
#[derive(Debug, Serialize)]
pub struct ReloadReport {
    /// Whether the reload command ran (only after a change).
    pub ran: bool,
    /// Zones not served with their new serial in time.
    pub not_served: Vec<NotServed>,
}

/// A zone the name server did not serve with its new serial.
#[derive(Debug, Serialize)]
pub struct NotServed {
    /// The zone.
    pub zone: String,
    /// The serial written.
    pub serial: u32,
    /// What the name server answered instead.
    pub seen: String,
}

/// How many zones fared how, and how many files changed.
#[derive(Debug, Default, Serialize)]
pub struct BuildCounts {
    /// Zones built.
    pub zones: usize,
    /// Zones written with a new serial.
    pub written: usize,
    /// Zones whose file already held what it should.
    pub unchanged: usize,
    /// Zones left out for a problem (their previous file stays).
    pub not_written: usize,
    /// Files written.
    pub files: usize,
    /// Stale files removed.
    pub removed: usize,
}

/// The `build --json` document of `plan`, once applied (`wrote`: whether
/// anything was written) or, for a `dry_run`, as the real build would give
/// it (`wrote`: whether it would write), with what `--reload` did and every
/// problem.
pub fn build(
    plan: &Plan,
    wrote: bool,
    dry_run: bool,
    reload: Option<ReloadReport>,
    problems: Vec<String>,
) -> BuildSummary {
    let zones: Vec<ZoneReport> = plan
        .zones
        .iter()
        .map(|z| ZoneReport {
            zone: z.zone.clone(),
            status: z.status,
            serial: z.serial,
            file: z.file.clone(),
        })
        .collect();
    let changed = |remove: bool| -> Vec<PathBuf> {
        let changes = plan.changes.iter().filter(|c| c.new.is_none() == remove);
        changes.map(|c| c.path.clone()).collect()
    };
    let (mut files, removed) = if wrote {
        (changed(false), changed(true))
    } else {
        (Vec::new(), Vec::new())
    };
    if plan.owners_change() {
        files.insert(0, plan.owners_file.clone());
    }
    if wrote && plan.state_changes() {
        files.insert(0, plan.state_file.clone());
    }
    let count = |status| zones.iter().filter(|z| z.status == status).count();
    let counts = BuildCounts {
        zones: zones.len(),
        written: count(Status::Written),
        unchanged: count(Status::Unchanged),
        not_written: count(Status::NotWritten),
        files: files.len(),
        removed: removed.len(),
    };
    BuildSummary {
        dry_run,
        zones,
        files,
        removed,
        reload,
        counts,
        problems,
    }
}
