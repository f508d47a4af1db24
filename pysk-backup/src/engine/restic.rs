//! restic: deduplicated snapshots in a repository, initialised on first
//! use. The password reaches restic as `RESTIC_PASSWORD_FILE` (the 0600
//! file itself); results come from `--json`. The source is backed up as
//! `.` from inside it, so paths in the snapshot are relative to it (a
//! restore lands at `DIR/PATH`).

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::child::{Child, Finished};
use crate::engine::{
    self, Backed, Chain, Config, Engine, Entry, Pruned, Set, Status, Verified, gpg, said,
};
use crate::error::BackupError;

/// The restic engine.
#[derive(Debug)]
pub struct Restic {
    config: Config,
    home: PathBuf,
    cache: PathBuf,
    /// Retention's plan as `check` read it (its listing of this host's
    /// snapshots proves the new one is there), for `prune` to carry out.
    plan: RefCell<Option<Vec<Forgotten>>>,
}

/// One line of `backup --json`: progress, a file's fate, the summary.
#[derive(Debug, Deserialize)]
struct Message {
    message_type: String,
    action: Option<String>,
    item: Option<String>,
    snapshot_id: Option<String>,
    total_files_processed: Option<u64>,
    total_bytes_processed: Option<u64>,
    data_added: Option<u64>,
}

/// What restic says when the repository cannot be reached.
const UNREACHABLE: &[&str] = &[
    "unable to open config file",
    "unable to open repository",
    "invalid backend",
    "dial tcp",
    "connection refused",
    "i/o timeout",
    "no such host",
];

/// What restic says when the repository is not there: only then is it
/// initialised.
const MISSING: &[&str] = &[
    "Is there a repository at the following location?",
    "repository does not exist",
];

/// A snapshot of `snapshots --json` or `forget --json`.
#[derive(Debug, Deserialize)]
struct Snapshot {
    time: String,
    id: Option<String>,
}

/// A node of `ls --json`.
#[derive(Debug, Deserialize)]
struct Node {
    struct_type: String,
    path: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    mtime: Option<String>,
    size: Option<u64>,
}

/// A group of `forget --json`: the snapshots the policy keeps and those
/// it would remove.
#[derive(Debug, Deserialize)]
struct Forgotten {
    keep: Option<Vec<Snapshot>>,
    remove: Option<Vec<Snapshot>>,
}

impl Restic {
    /// Checks the password file (0600, else exit 77) and makes the
    /// private directories.
    pub fn open(config: &Config) -> Result<Restic, BackupError> {
        pysk_common::secret::read_file(&config.passphrase_file)?;
        let home = engine::home_dir(config)?;
        let cache = config.state_dir.join("restic");
        gpg::private_dir(&cache)?;
        Ok(Restic {
            config: config.clone(),
            home,
            cache,
            plan: RefCell::new(None),
        })
    }

    /// restic with the repository, its cache and the password file.
    fn child(&self) -> Child {
        // restic has no file:// backend: its local form is the path.
        let target = &self.config.target;
        Child::new("restic", &self.home)
            .own_session()
            .arg("--repo")
            .arg(target.strip_prefix("file://").unwrap_or(target))
            .arg("--cache-dir")
            .arg(&self.cache)
            .env("RESTIC_PASSWORD_FILE", &self.config.passphrase_file)
    }

    /// Runs `restic ARGS`; any exit but 0 is an error for `step`.
    fn call(&self, step: &str, args: &[&str]) -> Result<Finished, BackupError> {
        let done = self.child().args(args).run()?;
        match done.ok() {
            true => Ok(done),
            false => Err(self.failure(step, &done)),
        }
    }

    /// A failed call, told apart by restic's `Fatal:` lines (0.14 exits 1
    /// for all of them): a wrong password, a repository another live
    /// restic has locked, a local target that cannot be written or is not
    /// there, one that cannot be reached (10 from restic 0.17 on), a
    /// snapshot that is not there, real damage; anything else a failed
    /// step. The reason quotes restic's cause, never its stack frames.
    fn failure(&self, step: &str, done: &Finished) -> BackupError {
        let reason = said::go_cause(&done.stderr);
        let reason = match reason.is_empty() {
            true => done.stderr_tail(),
            false => reason,
        };
        let said = |marks: &[&str]| marks.iter().any(|m| done.stderr.contains(m));
        if said(&["wrong password or no key found"]) {
            return BackupError::Denied(format!(
                "{} is not the password of the restic repository {} (restic: {reason})",
                self.config.passphrase_file.display(),
                self.config.target
            ));
        }
        if said(&["repository is already locked"]) {
            // Who holds it: restic's line and its time, before the rest.
            let holder = done
                .stderr
                .lines()
                .map(str::trim)
                .skip_while(|l| !l.contains("repository is already locked"));
            let holder: Vec<&str> = holder.take(2).collect();
            return BackupError::Busy(format!("{} / {reason}", holder.join(" / ")));
        }
        if let Some(fault) = engine::target_fault(&self.config) {
            return fault;
        }
        if done.code == Some(10) || said(UNREACHABLE) {
            BackupError::Unavailable {
                what: self.config.target.clone(),
                reason,
            }
        } else if said(&["no matching ID found", "no snapshot found"]) {
            BackupError::Name(format!("no such snapshot here: {reason}"))
        } else if said(&["repository contains errors", "does not match"]) {
            BackupError::Damaged(reason)
        } else {
            BackupError::Failed {
                step: format!("restic {step}"),
                reason,
            }
        }
    }

    /// Retention's plan for this host's snapshots by the policy of the
    /// switches (`forget --dry-run --json`), which lists every snapshot.
    fn plan(&self) -> Result<Vec<Forgotten>, BackupError> {
        let c = &self.config;
        let (d, w, m) = (
            c.keep_daily.to_string(),
            c.keep_weekly.to_string(),
            c.keep_monthly.to_string(),
        );
        let mut argv = vec!["forget", "--dry-run", "--json", "--host", &c.host];
        argv.extend(["--keep-daily", &d, "--keep-weekly", &w]);
        argv.extend(["--keep-monthly", &m]);
        let done = self.call("forget --dry-run", &argv)?;
        parse(&done.stdout, "forget")
    }

    /// Removes the locks of restic processes that are gone (restic's own
    /// test: a dead process on this host, or older than 30 minutes); a
    /// killed `check` or `prune` leaves an exclusive lock that would
    /// otherwise stop every later command, `restore` too. Called before
    /// each command that takes restic's lock, under our lock (or with no
    /// run of ours ever made here), so no restic of ours is running.
    fn unlock(&self) -> Result<(), BackupError> {
        self.call("unlock", &["unlock"]).map(drop)
    }

    /// Removes stale locks ([`Restic::unlock`]), which opens the
    /// repository with the password, and initialises it when it is not
    /// there yet (its config file missing); any other failure (a wrong
    /// password, a target that cannot be written) is the error, never a
    /// reason to `init` over it.
    fn unlock_or_init(&self) -> Result<(), BackupError> {
        let probe = self.child().arg("unlock").run()?;
        if probe.ok() {
            return Ok(());
        }
        if !MISSING.iter().any(|m| probe.stderr.contains(m)) {
            return Err(self.failure("unlock", &probe));
        }
        let init = self.child().arg("init").run()?;
        match init.ok() {
            true => Ok(()),
            false => Err(self.failure("init", &init)),
        }
    }

    /// `backup --json` of the source (`--dry-run -vv` too when asked),
    /// its lines.
    fn backup_run(&self, extra: &[&str]) -> Result<(Finished, Vec<Message>), BackupError> {
        let mut argv: Vec<OsString> = vec!["backup".into(), "--json".into()];
        argv.extend(["--host".into(), OsString::from(&self.config.host)]);
        argv.extend(extra.iter().map(OsString::from));
        for path in engine::excludes(&self.config) {
            argv.extend(["--exclude".into(), path.into_os_string()]);
        }
        argv.push(".".into());
        let done = self
            .child()
            .args(argv)
            .current_dir(&self.config.source)
            .run()?;
        let text = String::from_utf8_lossy(&done.stdout);
        let lines = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Ok((done, lines))
    }

    /// The snapshots, oldest first.
    fn snapshots(&self) -> Result<Vec<Set>, BackupError> {
        let host = self.config.host.as_str();
        let done = self.call("snapshots", &["snapshots", "--json", "--host", host])?;
        let list: Vec<Snapshot> = parse(&done.stdout, "snapshots")?;
        let mut sets: Vec<Set> = list.into_iter().map(set).collect();
        sets.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(sets)
    }

    /// The snapshot `time` names, else the newest.
    fn snapshot<'a>(&self, time: Option<&'a str>) -> &'a str {
        time.unwrap_or("latest")
    }
}

/// A snapshot as a set.
fn set(s: Snapshot) -> Set {
    Set {
        kind: "snapshot".to_owned(),
        time: utc_seconds(&s.time),
        id: s.id,
        volumes: None,
    }
}

/// restic's `2026-11-29T23:46:44.481914Z` as `2026-11-29T23:46:44Z`.
fn utc_seconds(time: &str) -> String {
    match (time.strip_suffix('Z'), time.find('.')) {
        (Some(_), Some(dot)) => format!("{}Z", &time[..dot]),
        _ => time.to_owned(),
    }
}

/// restic's JSON document on stdout.
fn parse<T: serde::de::DeserializeOwned>(stdout: &[u8], what: &str) -> Result<T, BackupError> {
    let text = String::from_utf8_lossy(stdout);
    let json = text
        .lines()
        .find(|l| l.starts_with(['[', '{']))
        .unwrap_or("");
    serde_json::from_str(json).map_err(|e| {
        pysk_common::Error::Internal(format!("restic {what} --json: unexpected output: {e}")).into()
    })
}

impl Engine for Restic {
    fn prepare(&self) -> Result<(), BackupError> {
        engine::writable(&self.config)?;
        self.unlock_or_init()
    }

    fn backup(&self) -> Result<Backed, BackupError> {
        let (done, lines) = self.backup_run(&[])?;
        // 3: the snapshot was made, but some files could not be read.
        if !matches!(done.code, Some(0 | 3)) {
            return Err(self.failure("backup", &done));
        }
        let errors: Vec<String> = lines
            .iter()
            .filter(|m| m.message_type == "error")
            .filter_map(|m| m.item.clone())
            .collect();
        let unreadable = (errors.len() as u64).max(u64::from(done.code == Some(3)));
        let unreadable_paths = engine::absolute(&self.config, errors);
        let summary = lines.into_iter().find(|m| m.message_type == "summary");
        let summary = summary.ok_or_else(|| BackupError::Failed {
            step: "restic backup".to_owned(),
            reason: "no summary in its --json output".to_owned(),
        })?;
        Ok(Backed {
            kind: "snapshot".to_owned(),
            id: summary.snapshot_id.unwrap_or_default(),
            files: summary.total_files_processed.unwrap_or(0),
            bytes: summary.total_bytes_processed.unwrap_or(0),
            added: summary.data_added.unwrap_or(0),
            unreadable,
            unreadable_paths,
        })
    }

    fn check(&self, backed: &Backed) -> Result<(), BackupError> {
        self.call("check", &["check"])?;
        let plan = self.plan()?;
        let listed = plan
            .iter()
            .flat_map(|g| g.keep.iter().chain(&g.remove).flatten())
            .filter_map(|s| s.id.as_deref());
        let found = listed
            .clone()
            .any(|id| !backed.id.is_empty() && id.starts_with(&backed.id));
        self.plan.replace(Some(plan));
        match found {
            true => Ok(()),
            false => Err(BackupError::Damaged(format!(
                "snapshot {} is not listed",
                backed.id
            ))),
        }
    }

    fn verify(&self, compare_data: bool) -> Result<Verified, BackupError> {
        self.unlock()?;
        self.call("check --read-data", &["check", "--read-data"])?;
        // check --read-data read every pack: the newest snapshot is whole.
        let proven = self.snapshots()?.pop().and_then(|s| s.id);
        if !compare_data {
            return Ok(Verified {
                changed: Vec::new(),
                proven,
            });
        }
        let (done, lines) = self.backup_run(&["--dry-run", "-vv"])?;
        if !matches!(done.code, Some(0 | 3)) {
            return Err(self.failure("backup --dry-run", &done));
        }
        let changed = lines.into_iter().filter(|m| {
            m.message_type == "verbose_status"
                && matches!(m.action.as_deref(), Some("new" | "modified"))
                && m.item.as_deref().is_some_and(|i| !i.ends_with('/'))
        });
        let changed = changed
            .filter_map(|m| m.item)
            .map(|i| i.trim_start_matches('/').to_owned());
        Ok(Verified {
            changed: changed.collect(),
            proven,
        })
    }

    fn status(&self) -> Result<Status, BackupError> {
        self.unlock()?;
        let sets = self.snapshots()?;
        let stats = self.call("stats", &["stats", "--json", "--mode", "raw-data"])?;
        let size: serde_json::Value = parse(&stats.stdout, "stats")?;
        Ok(Status {
            engine: self.config.kind,
            target: self.config.target.clone(),
            last_full: sets.last().map(|s| s.time.clone()),
            last_incremental: None,
            bytes: size.get("total_size").and_then(serde_json::Value::as_u64),
            chains: vec![Chain {
                complete: true,
                sets,
            }],
        })
    }

    fn list(&self, time: Option<&str>) -> Result<Vec<Entry>, BackupError> {
        self.unlock()?;
        let host = self.config.host.as_str();
        let argv = ["ls", "--json", "--host", host, self.snapshot(time)];
        let done = self.call("ls", &argv)?;
        let text = String::from_utf8_lossy(&done.stdout);
        // restic ignores an ID or `latest` that matches nothing (exit 0,
        // no output): no snapshot line, no such snapshot.
        if !text.contains("\"struct_type\":\"snapshot\"") {
            return Err(BackupError::Name(format!(
                "no snapshot {} in {}",
                self.snapshot(time),
                self.config.target
            )));
        }
        let nodes = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Node>(l).ok());
        let entries = nodes.filter(|n| n.struct_type == "node").filter_map(|n| {
            Some(Entry {
                path: n.path?.trim_start_matches('/').to_owned(),
                kind: n.kind.unwrap_or_default(),
                mtime: n.mtime.as_deref().map(utc_seconds).unwrap_or_default(),
                size: n.size,
            })
        });
        Ok(entries.collect())
    }

    fn restore(&self, path: &Path, time: Option<&str>, to: &Path) -> Result<(), BackupError> {
        let inside = engine::inside_path(path)?;
        self.unlock()?;
        let mut argv: Vec<OsString> = vec!["restore".into(), self.snapshot(time).into()];
        argv.extend(["--host".into(), OsString::from(&self.config.host)]);
        argv.extend(["--target".into(), to.as_os_str().to_owned()]);
        if !inside.as_os_str().is_empty() {
            argv.extend([
                "--include".into(),
                Path::new("/").join(&inside).into_os_string(),
            ]);
        }
        let done = self.child().args(argv).run()?;
        if !done.ok() {
            return Err(self.failure("restore", &done));
        }
        match to.join(&inside).symlink_metadata() {
            Ok(_) => Ok(()),
            Err(_) => Err(BackupError::Name(format!(
                "{}: not in the backup",
                inside.display()
            ))),
        }
    }

    fn prune(&self) -> Result<Pruned, BackupError> {
        // The policy's plan, then only its snapshots that are not the last
        // verified one (restic 0.14 cannot keep one by ID).
        let groups = match self.plan.take() {
            Some(plan) => plan,
            None => self.plan()?,
        };
        let proven = engine::proven(&self.config);
        let removed: Vec<Snapshot> = groups
            .into_iter()
            .flat_map(|g| g.remove.unwrap_or_default())
            .filter(|s| s.id.is_some() && s.id != proven)
            .collect();
        if removed.is_empty() {
            return Ok(Pruned::default());
        }
        let mut argv = vec!["forget", "--prune"];
        argv.extend(removed.iter().filter_map(|s| s.id.as_deref()));
        self.call("forget", &argv)?;
        Ok(Pruned {
            removed: removed.into_iter().map(set).collect(),
        })
    }

    fn cleanup(&self) -> Result<(), BackupError> {
        // Nothing is left to clean: restic removes its own locks, and a
        // killed one's stale lock is removed before the next backup.
        Ok(())
    }
}
