//! The two engines behind one interface: duplicity (full and incremental
//! chains, GPG with a passphrase) and restic (deduplicated snapshots).
//! [`open`] picks one from [`Config`]; every result is read from the
//! engine's machine-readable output (duplicity's `--log-fd`, restic's
//! `--json`), never from the text meant for people.

pub mod duplicity;
pub mod gpg;
pub mod restic;
pub mod said;
pub mod time;
pub mod verifier;

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::error::BackupError;

/// Which engine makes the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// duplicity: full and incremental chains, GPG symmetric encryption.
    Duplicity,
    /// restic: deduplicated snapshots in a repository.
    Restic,
}

impl Kind {
    /// The engine's name, as the switch gives it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Duplicity => "duplicity",
            Kind::Restic => "restic",
        }
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(text: &str) -> Result<Kind, String> {
        match text {
            "duplicity" => Ok(Kind::Duplicity),
            "restic" => Ok(Kind::Restic),
            _ => Err("expected duplicity or restic".to_owned()),
        }
    }
}

/// Everything an engine needs, resolved from the switches.
#[derive(Debug, Clone)]
pub struct Config {
    /// The engine.
    pub kind: Kind,
    /// duplicity's target URL or restic's repository.
    pub target: String,
    /// The passphrase (0600): duplicity's GPG passphrase, restic's
    /// password.
    pub passphrase_file: PathBuf,
    /// The state directory: duplicity's archive, GnuPG's home, the
    /// children's `HOME`.
    pub state_dir: PathBuf,
    /// The tree backed up.
    pub source: PathBuf,
    /// Paths left out (only those below `source` are passed on).
    pub excludes: Vec<PathBuf>,
    /// duplicity: a full backup when the last one is older than this.
    pub full_if_older_than: String,
    /// duplicity: the full chains kept.
    pub keep_full: u32,
    /// restic: daily snapshots kept.
    pub keep_daily: u32,
    /// restic: weekly snapshots kept.
    pub keep_weekly: u32,
    /// restic: monthly snapshots kept.
    pub keep_monthly: u32,
    /// The dump directory: its unfinished and old sets are left out.
    pub dump_dir: PathBuf,
    /// This machine's name (restic's `--host`: in a repository shared
    /// by several machines, `latest` and retention are this one's).
    pub host: String,
}

/// A backup just made.
#[derive(Debug, Clone, Serialize)]
pub struct Backed {
    /// `full`, `incremental` (duplicity) or `snapshot` (restic).
    pub kind: String,
    /// The backup set's time (duplicity) or the snapshot's ID (restic).
    pub id: String,
    /// Files in the source.
    pub files: u64,
    /// Bytes in the source.
    pub bytes: u64,
    /// Bytes the target grew by.
    pub added: u64,
    /// Files the engine could not read.
    pub unreadable: u64,
    /// The first of them (at most [`UNREADABLE_KEPT`]), absolute paths.
    pub unreadable_paths: Vec<PathBuf>,
}

/// The unreadable paths a [`Backed`] names.
pub const UNREADABLE_KEPT: usize = 20;

/// Paths an engine reported, absolute (relative ones are below the
/// source), the first [`UNREADABLE_KEPT`].
pub fn absolute(config: &Config, paths: Vec<String>) -> Vec<PathBuf> {
    let paths = paths.into_iter().map(|p| config.source.join(p));
    paths.take(UNREADABLE_KEPT).collect()
}

/// What a verify found, the backup being intact.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
    /// Files changed since the backup (only with `--compare-data`):
    /// information, as a live system always changes.
    pub changed: Vec<String>,
    /// The backup proven whole: the newest chain's full backup time
    /// (duplicity), the newest snapshot's ID (restic); retention keeps it.
    pub proven: Option<String>,
}

/// The stamp `<state>/verified.json` (with `"version": 1`): the last
/// backup `verify` proved.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Proven {
    /// When it was proven (RFC 3339, UTC).
    pub time: String,
    /// The engine.
    pub engine: String,
    /// duplicity: the chain's full backup time; restic: the snapshot ID.
    pub backup: String,
}

/// The path of the stamp of the last verified backup.
pub fn proven_path(config: &Config) -> PathBuf {
    config.state_dir.join("verified.json")
}

/// The backup `verify` last proved with this engine, if any (an
/// unreadable stamp protects nothing and is not an error).
pub fn proven(config: &Config) -> Option<String> {
    let bytes = fs::read(proven_path(config)).ok()?;
    let stamp: Proven = serde_json::from_slice(&bytes).ok()?;
    (stamp.engine == config.kind.name()).then_some(stamp.backup)
}

/// One backup set of a duplicity chain, or one restic snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Set {
    /// `full`, `incremental` or `snapshot`.
    pub kind: String,
    /// When it was made (RFC 3339, UTC).
    pub time: String,
    /// restic's snapshot ID; duplicity's sets have none.
    pub id: Option<String>,
    /// duplicity: its volumes.
    pub volumes: Option<u64>,
}

/// A duplicity chain: a full backup and its incrementals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// Whether its signatures are all there (duplicity's `chain-complete`).
    pub complete: bool,
    /// Its sets, oldest first.
    pub sets: Vec<Set>,
}

/// What the target holds.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The engine.
    pub engine: Kind,
    /// The target.
    pub target: String,
    /// The newest full backup (duplicity) or snapshot (restic).
    pub last_full: Option<String>,
    /// The newest incremental backup (duplicity).
    pub last_incremental: Option<String>,
    /// duplicity's chains, oldest first; restic's snapshots as one.
    pub chains: Vec<Chain>,
    /// Bytes the target holds, when it can be measured.
    pub bytes: Option<u64>,
}

impl Status {
    /// What `verified.json` names for the newest backup: the newest
    /// chain's full backup time (duplicity), the newest snapshot's ID
    /// (restic).
    pub fn newest_proof(&self) -> Option<String> {
        let newest = self.chains.last()?;
        match self.engine {
            Kind::Duplicity => newest.sets.first().map(|s| s.time.clone()),
            Kind::Restic => newest.sets.last().and_then(|s| s.id.clone()),
        }
    }
}

/// One file of a backup.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Its path relative to the source.
    pub path: String,
    /// `dir`, `file`, `symlink`, …
    pub kind: String,
    /// Its modification time (RFC 3339, UTC).
    pub mtime: String,
    /// Its size (restic; duplicity does not say).
    pub size: Option<u64>,
}

/// What retention removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    /// The sets or snapshots removed.
    pub removed: Vec<Set>,
}

/// What every engine does.
pub trait Engine {
    /// Before the dump step: the target can be written and reached, and
    /// the passphrase opens it (a restic repository made on first use),
    /// so a run that cannot back up fails before a long dump.
    fn prepare(&self) -> Result<(), BackupError>;
    /// Backs `source` up (a duplicity full or incremental, a restic
    /// snapshot), after [`Engine::prepare`].
    fn backup(&self) -> Result<Backed, BackupError>;
    /// A quick check that the backup just made is there and whole.
    fn check(&self, backed: &Backed) -> Result<(), BackupError>;
    /// The backup's integrity (`Damaged` when it is not intact); with
    /// `compare_data` also the files changed since.
    fn verify(&self, compare_data: bool) -> Result<Verified, BackupError>;
    /// What the target holds.
    fn status(&self) -> Result<Status, BackupError>;
    /// The files of the backup at `time` (the newest without one).
    fn list(&self, time: Option<&str>) -> Result<Vec<Entry>, BackupError>;
    /// Restores `path` (relative to the source) as at `time` to
    /// `to/path`.
    fn restore(&self, path: &Path, time: Option<&str>, to: &Path) -> Result<(), BackupError>;
    /// Retention; never removes the newest chain or snapshot, nor the one
    /// [`proven`] names.
    fn prune(&self) -> Result<Pruned, BackupError>;
    /// Removes what failed runs left on the target.
    fn cleanup(&self) -> Result<(), BackupError>;
}

/// The engine `config` names, with its secret checked (0600, else exit
/// 77) and its private directories made.
pub fn open(config: &Config) -> Result<Box<dyn Engine>, BackupError> {
    match config.kind {
        Kind::Duplicity => Ok(Box::new(duplicity::Duplicity::open(config)?)),
        Kind::Restic => Ok(Box::new(restic::Restic::open(config)?)),
    }
}

/// The children's `HOME`: `<state>/home`, private.
pub fn home_dir(config: &Config) -> Result<PathBuf, BackupError> {
    let home = config.state_dir.join("home");
    gpg::private_dir(&config.state_dir)?;
    gpg::private_dir(&home)?;
    Ok(home)
}

/// The paths left out, as absolute paths below the source: the
/// configured excludes that lie below it (duplicity refuses any other),
/// and the dump directory's unfinished sets and every set `current` does
/// not point to.
pub fn excludes(config: &Config) -> Vec<PathBuf> {
    let below = |p: &Path| p.starts_with(&config.source) && p != config.source;
    let mut paths: Vec<PathBuf> = config
        .excludes
        .iter()
        .filter(|p| below(p))
        .cloned()
        .collect();
    // The tool's own state (duplicity's cache, GnuPG's home, the
    // temporary files) and a local target would back up themselves.
    let own = [Some(config.state_dir.clone()), local_target(&config.target)];
    paths.extend(own.into_iter().flatten().filter(|p| below(p)));
    let sets = config.dump_dir.join("sets");
    if below(&sets) {
        let current = fs::read_link(config.dump_dir.join("current")).ok();
        let current = current.as_ref().and_then(|c| c.file_name());
        for entry in fs::read_dir(&sets).into_iter().flatten().flatten() {
            if Some(entry.file_name().as_os_str()) != current {
                paths.push(entry.path());
            }
        }
    }
    paths
}

/// The directory of a target on this machine: `file://PATH` (duplicity),
/// `local:PATH` or an absolute path (restic); `None` for others.
pub fn local_target(target: &str) -> Option<PathBuf> {
    let path = target
        .strip_prefix("file://")
        .or_else(|| target.strip_prefix("local:"))
        .unwrap_or(target);
    Some(PathBuf::from(path)).filter(|p| p.is_absolute())
}

/// What is wrong with a local target directory, asked once an engine
/// call on it failed (a read-only target still verifies with
/// duplicity): one that cannot be written (its path and the system's
/// cause, as any file not written: 73), or one that is not there. `None`
/// for another target, or one that is fine.
pub fn target_fault(config: &Config) -> Option<BackupError> {
    use nix::unistd::{AccessFlags, access};
    let dir = local_target(&config.target)?;
    let existing = dir.ancestors().find(|p| p.exists())?;
    if let Err(errno) = access(existing, AccessFlags::W_OK) {
        let source = std::io::Error::from_raw_os_error(errno as i32);
        return Some(pysk_common::Error::Write { path: dir, source }.into());
    }
    (existing != dir).then(|| BackupError::Unavailable {
        what: config.target.clone(),
        reason: format!("{}: no such directory", dir.display()),
    })
}

/// Refuses, before a backup, a local target that cannot be written (a
/// read-only file system): the engines would retry for minutes before
/// they give up. One that is not there yet is made by the engine.
pub fn writable(config: &Config) -> Result<(), BackupError> {
    match target_fault(config) {
        Some(fault @ BackupError::Common(_)) => Err(fault),
        _ => Ok(()),
    }
}

/// A path given to restore, as the relative path inside the source:
/// leading `/` removed, `..` refused.
pub fn inside_path(path: &Path) -> Result<PathBuf, BackupError> {
    use std::path::Component;
    let mut inside = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => inside.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(BackupError::Name(format!(
                    "{}: a path in the backup cannot hold ..",
                    path.display()
                )));
            }
        }
    }
    Ok(inside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(target: &str) -> Config {
        Config {
            kind: Kind::Duplicity,
            target: target.to_owned(),
            passphrase_file: "/etc/pysk/backup.passphrase".into(),
            state_dir: "/srv/state".into(),
            source: "/srv".into(),
            excludes: vec!["/proc".into(), "/srv/tmp".into()],
            full_if_older_than: "14D".into(),
            keep_full: 2,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            dump_dir: "/nonexistent/dumps".into(),
            host: "h.example".into(),
        }
    }

    #[test]
    fn the_state_and_a_local_target_below_the_source_are_left_out() {
        let paths = |target| excludes(&config(target));
        let want = |t: &str| -> Vec<PathBuf> {
            ["/srv/tmp", "/srv/state", t]
                .iter()
                .map(PathBuf::from)
                .collect()
        };
        assert_eq!(paths("file:///srv/backup"), want("/srv/backup"));
        assert_eq!(paths("local:/srv/repo"), want("/srv/repo"));
        assert_eq!(paths("/srv/repo"), want("/srv/repo"));
        let remote: Vec<PathBuf> = ["/srv/tmp", "/srv/state"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(paths("sftp://h//srv/backup"), remote);
        assert_eq!(paths("file:///var/backup"), remote);
    }
}
