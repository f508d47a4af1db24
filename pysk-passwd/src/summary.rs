//! The `--json` documents of `sync`, `check` and `htpasswd`: counts and
//! names only, never a hash. `pysk_common::report::print_json` puts
//! `"version": 1` in front.

use serde::Serialize;

use crate::plan::{Changes, Kind, Plan, Planned};

/// What a sync did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncSummary {
    /// Whether this was a dry run (nothing written, homes not made).
    pub dry_run: bool,
    /// Each account file, with the accounts it adds, changes and removes.
    pub files: Vec<FileCounts>,
    /// How many files were written (0 in a dry run).
    pub files_written: usize,
    /// The home directories made and corrected.
    pub homes: Homes,
    /// Home directories that could not be made right (reported on stderr).
    pub problems: usize,
}

/// One account file in a sync's summary.
#[derive(Debug, Clone, Serialize)]
pub struct FileCounts {
    /// The file.
    pub path: String,
    /// Whether it changes.
    pub changed: bool,
    /// Users' entries added, changed, removed.
    pub users: Counts,
    /// FTP accounts' entries added, changed, removed.
    pub ftp_accounts: Counts,
}

/// How many entries of one kind a file adds, changes and removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Entries added.
    pub added: usize,
    /// Entries changed.
    pub changed: usize,
    /// Entries removed.
    pub removed: usize,
}

/// Home directories a sync made (a dry run: would make) and corrected.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Homes {
    /// Directories created.
    pub created: usize,
    /// Directories whose owner or mode was corrected.
    pub fixed: usize,
}

impl SyncSummary {
    /// The file counts of `plan`; homes and problems are added as they
    /// happen.
    pub fn new(plan: &Plan, dry_run: bool) -> SyncSummary {
        let files: Vec<FileCounts> = plan
            .files()
            .into_iter()
            .map(|p| FileCounts {
                path: p.path.display().to_string(),
                changed: p.changed(),
                users: count(plan, &p.changes, Kind::User),
                ftp_accounts: count(plan, &p.changes, Kind::Ftp),
            })
            .collect();
        let files_written = if dry_run {
            0
        } else {
            files.iter().filter(|f| f.changed).count()
        };
        SyncSummary {
            dry_run,
            files,
            files_written,
            ..SyncSummary::default()
        }
    }
}

/// The entries of `kind` among `changes` (the shared group is neither).
fn count(plan: &Plan, changes: &Changes, kind: Kind) -> Counts {
    let of = |names: &[String]| {
        names
            .iter()
            .filter(|n| plan.kinds.get(n.as_str()) == Some(&kind))
            .count()
    };
    Counts {
        added: of(&changes.added),
        changed: of(&changes.changed),
        removed: of(&changes.removed),
    }
}

/// What `check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    /// Whether the files match the database.
    pub in_sync: bool,
    /// Each file that differs, with the names of the entries a sync would
    /// add, change and remove.
    pub files: Vec<FileChanges>,
}

/// One file that differs from the database.
#[derive(Debug, Clone, Serialize)]
pub struct FileChanges {
    /// The file.
    pub path: String,
    /// The entries, by name.
    #[serde(flatten)]
    pub changes: Changes,
}

impl CheckSummary {
    /// The differences `plan` would write.
    pub fn new(plan: &Plan) -> CheckSummary {
        let files: Vec<FileChanges> = plan
            .files()
            .into_iter()
            .filter(|p| p.changed())
            .map(|p: &Planned| FileChanges {
                path: p.path.display().to_string(),
                changes: p.changes.clone(),
            })
            .collect();
        CheckSummary {
            in_sync: files.is_empty(),
            files,
        }
    }
}

/// What `htpasswd --output` changed (or, with `--dry-run`, would change).
#[derive(Debug, Clone, Serialize)]
pub struct HtpasswdSummary {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// The `--output` file.
    pub path: String,
    /// Whether the file was replaced (not in a dry run, nor when it held
    /// these lines already).
    pub written: bool,
    /// The users added, whose hash changed, and removed, by name.
    #[serde(flatten)]
    pub changes: Changes,
}
