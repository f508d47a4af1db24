//! duplicity: full and incremental chains, GPG-encrypted with the
//! passphrase, which reaches duplicity only in `PASSPHRASE` of its own
//! environment. `--archive-dir <state>/duplicity --name pysk` on every
//! call (duplicity's default cache is shared with anything else root
//! runs), GnuPG in `<state>/gnupg`, its agent stopped with the engine.
//! Results come from `--log-fd` ([`log`]).

pub mod log;

use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use pysk_common::secret::{self, Secret};

use crate::child::{Child, Finished};
use crate::engine::verifier::{self, Found};
use crate::engine::{
    self, Backed, Chain, Config, Engine, Entry, Pruned, Set, Status, Verified, gpg, said,
};
use crate::error::BackupError;
use log::Record;

/// The duplicity engine.
#[derive(Debug)]
pub struct Duplicity {
    config: Config,
    passphrase: Secret,
    home: PathBuf,
    gnupg: gpg::Home,
    archive: PathBuf,
    tmp: PathBuf,
    /// The last listing of the chains, until a call may change them: the
    /// backup, its check and retention read one `collection-status`.
    chains: RefCell<Option<Vec<Chain>>>,
    /// What [`Engine::prepare`] found of the passphrase's record.
    prepared: Cell<Option<Found>>,
}

impl Duplicity {
    /// Reads the passphrase (0600, else exit 77) and makes the private
    /// directories.
    pub fn open(config: &Config) -> Result<Duplicity, BackupError> {
        let passphrase = secret::read_file(&config.passphrase_file)?;
        let home = engine::home_dir(config)?;
        let archive = config.state_dir.join("duplicity");
        gpg::private_dir(&archive)?;
        Ok(Duplicity {
            config: config.clone(),
            passphrase,
            home,
            gnupg: gpg::Home::open(&config.state_dir)?,
            archive,
            tmp: fresh_tmp(config)?,
            chains: RefCell::new(None),
            prepared: Cell::new(None),
        })
    }

    /// Runs duplicity with `args` and the options every call has, the
    /// home's agent started first.
    fn run(&self, args: Vec<OsString>) -> Result<(Finished, Vec<Record>), BackupError> {
        let child = Child::new("duplicity", &self.home)
            .own_session()
            .args(args)
            .arg("--archive-dir")
            .arg(&self.archive)
            .args(["--name", "pysk"])
            .arg("--tempdir")
            .arg(&self.tmp)
            .env("TMPDIR", &self.tmp)
            .env("PASSPHRASE", self.passphrase.expose())
            .env("GNUPGHOME", self.gnupg.dir());
        // Whatever this call changes, the listing of the chains is redone.
        self.chains.take();
        self.gnupg.start_agent();
        let done = child.run_logged("--log-fd")?;
        let records = log::records(&done.log);
        Ok((done, records))
    }

    /// [`Duplicity::run`], any exit but 0 an error for `step`.
    fn call(&self, step: &str, args: Vec<OsString>) -> Result<Vec<Record>, BackupError> {
        let (done, records) = self.run(args)?;
        match done.ok() {
            true => Ok(records),
            false => Err(self.failure(step, &done, &records)),
        }
    }

    /// What a failed call means, by duplicity's error code; a local
    /// target that cannot be written or is not there is named as such.
    /// The reason is duplicity's message, a Python traceback left out.
    fn failure(&self, step: &str, done: &Finished, records: &[Record]) -> BackupError {
        let errors = log::errors(records);
        let reason = match errors.is_empty() {
            true => stderr_cause(done),
            false => errors
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
        let code = errors
            .first()
            .map(|e| e.0)
            .or(done.code.and_then(|c| c.try_into().ok()));
        match code {
            // another duplicity holds the archive directory's lock
            Some(23) => return BackupError::Busy(reason),
            // GnuPG cannot decrypt with this passphrase
            Some(31) if reason.contains("Bad session key") => {
                return BackupError::Denied(reason);
            }
            _ => {}
        }
        if let Some(fault) = engine::target_fault(&self.config) {
            return fault;
        }
        match code {
            // mismatched or unreadable manifests, a hash mismatch, a volume
            // of the wrong size; no manifests or signatures at all
            Some(4 | 5 | 6 | 18 | 21 | 44) => BackupError::Damaged(reason),
            // "… not found in archive - no files restored."
            Some(19 | 20) => BackupError::Name(reason.trim_end_matches('.').to_owned()),
            Some(8 | 38 | 50..=55) => BackupError::Unavailable {
                what: self.config.target.clone(),
                reason,
            },
            _ => BackupError::Failed {
                step: format!("duplicity {step}"),
                reason,
            },
        }
    }

    /// Checks the passphrase against the record of the chain's
    /// ([`verifier`]) before any call that encrypts or decrypts: another
    /// passphrase is `Denied` (77) before duplicity runs. With no record
    /// (a new machine restoring), duplicity's own decryption decides.
    fn passphrase_check(&self) -> Result<Found, BackupError> {
        verifier::check(&self.config.state_dir, self.passphrase.expose().as_bytes())
    }

    /// The chains on the target, listed anew only when a call since the
    /// last listing may have changed them.
    fn chains(&self) -> Result<Vec<Chain>, BackupError> {
        if let Some(chains) = self.chains.borrow().clone() {
            return Ok(chains);
        }
        let records = self.call(
            "collection-status",
            args(["collection-status", &self.config.target]),
        )?;
        let chains = log::chains(&records);
        self.chains.replace(Some(chains.clone()));
        Ok(chains)
    }

    /// `--exclude P` for every path left out.
    fn exclude_args(&self) -> Vec<OsString> {
        let excludes = engine::excludes(&self.config);
        excludes
            .into_iter()
            .flat_map(|p| ["--exclude".into(), p.into_os_string()])
            .collect()
    }
}

/// `<state>/tmp` (0700), duplicity's temporary directory, emptied of
/// what a killed run left there (volumes of up to 200 MB). Every command
/// that opens the engine holds the lock (or no run can hold it).
fn fresh_tmp(config: &Config) -> Result<PathBuf, BackupError> {
    let tmp = config.state_dir.join("tmp");
    match fs::remove_dir_all(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(pysk_common::error::write_err(&tmp)(e).into());
        }
        _ => {}
    }
    gpg::private_dir(&tmp)?;
    Ok(tmp)
}

/// duplicity's stderr without a Python traceback (its exception line
/// kept), else its last lines.
fn stderr_cause(done: &Finished) -> String {
    let lines: Vec<String> = done.stderr.lines().map(str::to_owned).collect();
    let cause = said::python_cause(&lines[lines.len().saturating_sub(40)..]);
    match cause.is_empty() {
        true => done.stderr_tail(),
        false => cause,
    }
}

/// What duplicity says when a volume it reads is damaged: an exception
/// while reading it, a hash that does not match, GnuPG unable to
/// decrypt it (another passphrase is `Denied` before this).
const DAMAGE: &[&str] = &[
    "KeyError",
    "IndexError",
    "hash mismatch",
    "Invalid data",
    "GPGError",
    "decryption failed",
    "gpg failed",
    "CRC error",
    "invalid packet",
    "BadGzipFile",
    "Not a gzipped file",
    "zlib.error",
    "tarfile.ReadError",
];

/// A failed step of reading the backup that names damage, as
/// [`BackupError::Damaged`]: verify's exit 1 then says "the backup is
/// damaged", quoting duplicity.
fn damaged(error: BackupError) -> BackupError {
    match error {
        BackupError::Failed { reason, .. } if DAMAGE.iter().any(|m| reason.contains(m)) => {
            BackupError::Damaged(reason)
        }
        other => other,
    }
}

/// Arguments from anything path-like.
fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(items: I) -> Vec<OsString> {
    items.into_iter().map(Into::into).collect()
}

/// The newest set of all chains.
fn newest(chains: &[Chain], kind: Option<&str>) -> Option<Set> {
    let sets = chains.iter().flat_map(|c| &c.sets);
    sets.filter(|s| kind.is_none_or(|k| s.kind == k))
        .max_by(|a, b| a.time.cmp(&b.time))
        .cloned()
}

impl Engine for Duplicity {
    fn prepare(&self) -> Result<(), BackupError> {
        engine::writable(&self.config)?;
        self.prepared.set(Some(self.passphrase_check()?));
        Ok(())
    }

    fn backup(&self) -> Result<Backed, BackupError> {
        // No record of the chain's passphrase: a new chain (a full
        // backup), recorded once it is made.
        let found = match self.prepared.get() {
            Some(found) => found,
            None => self.passphrase_check()?,
        };
        let new_chain = found == Found::Missing;
        let mut argv = match new_chain {
            true => args(["full"]),
            false => args(["--full-if-older-than", &self.config.full_if_older_than]),
        };
        argv.extend(self.exclude_args());
        argv.extend(args([
            self.config.source.as_os_str(),
            self.config.target.as_ref(),
        ]));
        let records = self.call("backup", argv)?;
        if new_chain {
            verifier::record(&self.config.state_dir, self.passphrase.expose().as_bytes())?;
        }
        let stats = log::statistics(&records);
        let unreadable_paths = engine::absolute(&self.config, log::unreadable(&records));
        let set = newest(&self.chains()?, None).ok_or_else(|| {
            BackupError::Damaged(
                "duplicity reported a backup that the target does not list".to_owned(),
            )
        })?;
        let stat = |key: &str| stats.get(key).copied().unwrap_or(0);
        Ok(Backed {
            kind: set.kind,
            id: set.time,
            files: stat("SourceFiles"),
            bytes: stat("SourceFileSize"),
            added: stat("TotalDestinationSizeChange"),
            unreadable: stat("Errors").max(unreadable_paths.len() as u64),
            unreadable_paths,
        })
    }

    fn check(&self, backed: &Backed) -> Result<(), BackupError> {
        let chains = self.chains()?;
        let whole = chains.iter().filter(|c| c.complete).flat_map(|c| &c.sets);
        match whole.clone().find(|s| s.time == backed.id) {
            Some(set) if set.volumes.unwrap_or(0) > 0 => Ok(()),
            Some(_) => Err(BackupError::Damaged(format!(
                "the backup of {} has no volume",
                backed.id
            ))),
            None => Err(BackupError::Damaged(format!(
                "the backup of {} is in no complete chain on the target",
                backed.id
            ))),
        }
    }

    fn verify(&self, compare_data: bool) -> Result<Verified, BackupError> {
        self.passphrase_check()?;
        let mut argv = args(["verify"]);
        if compare_data {
            argv.push("--compare-data".into());
        }
        argv.extend(self.exclude_args());
        argv.extend(args([
            self.config.target.as_ref(),
            self.config.source.as_os_str(),
        ]));
        let (done, records) = self.run(argv)?;
        // Exit 1 with no error record, only with --compare-data: files
        // differ, the backup is whole. Without it, 1 is a failure.
        let differs = compare_data && done.code == Some(1) && log::errors(&records).is_empty();
        if !(done.ok() || differs) {
            return Err(damaged(self.failure("verify", &done, &records)));
        }
        // verify reads the chain that restores "now": the newest.
        let newest = self.chains()?.pop();
        let full = newest.and_then(|c| c.sets.into_iter().next());
        Ok(Verified {
            changed: log::differences(&records),
            proven: full.map(|s| s.time),
        })
    }

    fn status(&self) -> Result<Status, BackupError> {
        let chains = self.chains()?;
        Ok(Status {
            engine: self.config.kind,
            target: self.config.target.clone(),
            last_full: newest(&chains, Some("full")).map(|s| s.time),
            last_incremental: newest(&chains, Some("incremental")).map(|s| s.time),
            bytes: local_size(&self.config.target),
            chains,
        })
    }

    fn list(&self, time: Option<&str>) -> Result<Vec<Entry>, BackupError> {
        self.passphrase_check()?;
        let mut argv = args(["list-current-files"]);
        if let Some(time) = time {
            argv.extend(args(["--time", time]));
        }
        argv.push(self.config.target.clone().into());
        Ok(log::files(&self.call("list-current-files", argv)?))
    }

    fn restore(&self, path: &Path, time: Option<&str>, to: &Path) -> Result<(), BackupError> {
        self.passphrase_check()?;
        let inside = engine::inside_path(path)?;
        let dest = to.join(&inside);
        let mut argv = args(["restore"]);
        if !inside.as_os_str().is_empty() {
            argv.extend(args([
                "--file-to-restore".into(),
                inside.clone().into_os_string(),
            ]));
        }
        if let Some(time) = time {
            argv.extend(args(["--time", time]));
        }
        if dest.exists() {
            argv.push("--force".into()); // `to` itself, checked empty
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|source| pysk_common::Error::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
        argv.extend(args([self.config.target.as_ref(), dest.as_os_str()]));
        self.call("restore", argv)?;
        Ok(())
    }

    fn prune(&self) -> Result<Pruned, BackupError> {
        let before = self.chains()?;
        let keep = keep_full(&before, self.config.keep_full, engine::proven(&self.config));
        if before.len() <= keep as usize {
            return Ok(Pruned::default()); // no chain beyond those kept
        }
        let keep = keep.to_string();
        let target = self.config.target.as_str();
        self.call(
            "remove-all-but-n-full",
            args(["remove-all-but-n-full", &keep, "--force", target]),
        )?;
        let after: Vec<Set> = self.chains()?.into_iter().flat_map(|c| c.sets).collect();
        let removed = before
            .into_iter()
            .flat_map(|c| c.sets)
            .filter(|s| !after.contains(s));
        Ok(Pruned {
            removed: removed.collect(),
        })
    }

    fn cleanup(&self) -> Result<(), BackupError> {
        self.call("cleanup", args(["cleanup", "--force", &self.config.target]))?;
        Ok(())
    }
}

/// The full chains to keep: `keep`, or more so that the chain whose full
/// backup `proven` names (the last verified) is among them.
fn keep_full(chains: &[Chain], keep: u32, proven: Option<String>) -> u32 {
    let fulls: Vec<&Set> = chains.iter().filter_map(|c| c.sets.first()).collect();
    let there = proven.filter(|p| fulls.iter().any(|s| &s.time == p));
    let since = there.map(|p| fulls.iter().filter(|s| s.time >= p).count());
    match since.and_then(|n| u32::try_from(n).ok()) {
        Some(n) => keep.max(n),
        None => keep,
    }
}

/// The bytes of a `file://` target's files; `None` for other targets.
fn local_size(target: &str) -> Option<u64> {
    let dir = target.strip_prefix("file://")?;
    let entries = fs::read_dir(dir).ok()?;
    let sizes = entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file());
    Some(sizes.map(|m| m.len()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_that_names_damage_is_damage_and_nothing_else_is() {
        let failed = |reason: &str| BackupError::Failed {
            step: "duplicity verify".into(),
            reason: reason.into(),
        };
        let said = |e: BackupError| e.to_string();
        assert_eq!(
            said(damaged(failed("KeyError: 1"))),
            "the backup is damaged: KeyError: 1"
        );
        assert_eq!(
            said(damaged(failed(
                "GPGError: GPG Failed, see log below: gpg: decryption failed: No secret key"
            ))),
            "the backup is damaged: GPGError: GPG Failed, see log below: gpg: decryption failed: No secret key"
        );
        assert_eq!(
            said(damaged(failed("Connection reset by peer"))),
            "duplicity verify failed: Connection reset by peer"
        );
        let denied = BackupError::Denied("Bad session key".into());
        assert!(matches!(damaged(denied), BackupError::Denied(_)));
    }
}
