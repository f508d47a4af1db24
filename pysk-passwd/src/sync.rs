//! `sync` and `check`: the account files made to match the database.
//!
//! A sync takes the account files' locks, reads the files under them,
//! validates the whole database against them, computes every new file,
//! and only then writes: each changed file atomically with its previous
//! version kept as `name-`, original owner and mode kept. Then the homes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pysk_common::atomic::{self, Options as WriteOptions};
use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;

use crate::database::Database;
use crate::error::PasswdError;
use crate::files::Files;
use crate::homes::{self, Event};
use crate::plan::{self, Plan, Policy};
use crate::pwlock::AccountLock;
use crate::validate::{self, Account, Rules};

/// Where and how to sync.
#[derive(Debug, Clone)]
pub struct Options {
    /// The root whose `etc/` and `home/` are managed (`/` on a live system).
    pub root: PathBuf,
    /// The entry-shaping switches.
    pub policy: Policy,
    /// The vsftpd chroot list inside `root`, if one is kept.
    pub chroot_list: Option<PathBuf>,
    /// How long to wait for the account files' locks.
    pub lock_timeout: Duration,
    /// Print what would change; write nothing.
    pub dry_run: bool,
    /// Accept a database that removes many managed accounts at once.
    pub force: bool,
    /// Print nothing on success.
    pub quiet: bool,
}

/// More than this share of the managed accounts, and more than
/// [`REMOVAL_FLOOR`] of them, is too many to remove without `--force`:
/// an empty or truncated export must not wipe the users.
const REMOVAL_SHARE: f64 = 0.5;
/// See [`REMOVAL_SHARE`].
const REMOVAL_FLOOR: usize = 5;

/// Syncs the root's files with `db` (from `source`); writes the changes
/// shown to `out`.
pub fn sync(
    db: &Database,
    source: &str,
    options: &Options,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, PasswdError> {
    let lock = if options.dry_run {
        None
    } else {
        Some(AccountLock::acquire(
            &options.root.join("etc"),
            options.lock_timeout,
        )?)
    };
    let (accounts, plan) = prepare(db, source, options, report)?;
    if !options.force
        && plan.removed > REMOVAL_FLOOR
        && plan.removed as f64 > plan.managed as f64 * REMOVAL_SHARE
    {
        return Err(PasswdError::Refused {
            source: source.to_owned(),
            removed: plan.removed,
            managed: plan.managed,
        });
    }
    if !options.dry_run {
        // Every file can be written, or none is: the chroot list is the
        // only one whose directory may be missing.
        if let Some(list) = &plan.chroot_list
            && list.changed()
            && !list.path.parent().is_some_and(Path::is_dir)
        {
            return Err(PasswdError::Setting {
                name: "passwd_chroot_list".to_owned(),
                reason: format!("{}: its directory does not exist", list.path.display()),
            });
        }
        for (planned, backup) in plan.write_order() {
            if planned.changed() {
                let write = WriteOptions {
                    backup,
                    ..WriteOptions::default()
                };
                // Known to differ: no second read to compare.
                atomic::replace_with(&planned.path, write, None, |f| f.write_all(&planned.new))?;
            }
        }
    }
    drop(lock);
    show(&plan, options, out)?;
    if options.dry_run {
        if !options.quiet {
            for dir in homes::missing(&options.root, &accounts) {
                writeln!(out, "{}: would be created", dir.display())
                    .map_err(PasswdError::Stdout)?;
            }
        }
        return Ok(Outcome::Success);
    }
    let mut outcome = Outcome::Success;
    for event in homes::ensure(&options.root, &accounts, options.policy.shared_gid) {
        match event {
            Event::Created(path) => report.info(format_args!("{}: created", path.display())),
            Event::Owner(path, uid, gid) => report.info(format_args!(
                "{}: owner was {uid}:{gid}, corrected",
                path.display()
            )),
            Event::Mode(path, mode) => report.info(format_args!(
                "{}: mode was {mode:04o}, corrected",
                path.display()
            )),
            Event::Problem(path, why) => {
                report.warn(format_args!("{}: {why}", path.display()));
                outcome = Outcome::Partial;
            }
        }
    }
    Ok(outcome)
}

/// Compares the root's files with `db`: [`Outcome::Success`] when they
/// match, else the differences to `out` and [`Outcome::Partial`].
pub fn check(
    db: &Database,
    source: &str,
    options: &Options,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, PasswdError> {
    let (_, plan) = prepare(db, source, options, report)?;
    if !plan.changed() {
        return Ok(Outcome::Success);
    }
    show(&plan, options, out)?;
    Ok(Outcome::Partial)
}

/// Writes what the plan changes to `out`, unless quiet.
fn show(plan: &Plan, options: &Options, out: &mut dyn Write) -> Result<(), PasswdError> {
    if options.quiet {
        return Ok(());
    }
    out.write_all(plan.show().as_bytes())
        .and_then(|()| out.flush())
        .map_err(PasswdError::Stdout)
}

/// Reads the files, validates the database against them (each problem
/// reported), and plans the new files.
fn prepare(
    db: &Database,
    source: &str,
    options: &Options,
    report: &Reporter,
) -> Result<(Vec<Account>, Plan), PasswdError> {
    let files = Files::read(&options.root, options.chroot_list.as_deref())?;
    let taken = plan::taken_names(&files, &options.policy);
    let rules = Rules {
        uids: &options.policy.uids,
        ftp_shell: &options.policy.ftp_shell,
        shells: Some(&files.shells),
        taken: &taken,
        root: Some(&options.root),
    };
    let accounts = validated(db, source, &rules, report)?;
    let plan = plan::plan(&files, &accounts, &options.policy, today())?;
    Ok((accounts, plan))
}

/// The accounts of `db`, or each problem reported and the database
/// rejected.
pub fn validated(
    db: &Database,
    source: &str,
    rules: &Rules,
    report: &Reporter,
) -> Result<Vec<Account>, PasswdError> {
    validate::accounts(db, rules).map_err(|problems| {
        for problem in &problems {
            report.warn(format_args!("{source}: {problem}"));
        }
        PasswdError::Rejected {
            source: source.to_owned(),
            problems: problems.len(),
        }
    })
}

/// Today as shadow counts days: since 1970-01-01, UTC.
fn today() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}
