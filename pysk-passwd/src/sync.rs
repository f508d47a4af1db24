//! `sync` and `check`: the account files made to match the database.
//!
//! A sync takes the account files' locks, finishes a sync a crash
//! interrupted, reads the files under them, validates the whole database
//! against them, computes every new file, and only then writes the
//! changed files as one set ([`crate::commit`]), each previous version
//! kept as `name-`, original owner and mode kept. Then the homes.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pysk_common::date::today;
use pysk_common::exit::Outcome;
use pysk_common::report::{Reporter, print_json};

use crate::commit::{self, Change};
use crate::database::{self, Database};
use crate::error::PasswdError;
use crate::files::Files;
use crate::homes::{self, Event};
use crate::plan::{self, Plan, Policy};
use crate::pwlock::AccountLock;
use crate::summary::{CheckSummary, SyncSummary};
use crate::validate::{self, Account, Rules};

/// What to sync (or check), where and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The user database, or `-` for stdin.
    pub users: PathBuf,
    /// The root whose `etc/` and `home/` are managed (`/` on a live system).
    pub root: PathBuf,
    /// The entry-shaping switches.
    pub policy: Policy,
    /// The vsftpd chroot list inside `root`, if one is kept.
    pub chroot_list: Option<PathBuf>,
    /// How long to wait for the account files' locks.
    pub wait: Duration,
    /// Print what would change; write nothing.
    pub dry_run: bool,
    /// Accept a database that removes many managed accounts at once.
    pub force: bool,
    /// Print the summary as the `--json` document.
    pub json: bool,
}

/// More than this share of the managed accounts, and more than
/// [`REMOVAL_FLOOR`] of them, is too many to remove without `--force`:
/// an empty or truncated export must not wipe the users.
const REMOVAL_SHARE: f64 = 0.5;
/// See [`REMOVAL_SHARE`].
const REMOVAL_FLOOR: usize = 5;

/// The account files' locks for a sync. A real sync then clears what a
/// killed run left: its temporary files in `etc/` and the chroot list's
/// directory, and a set of files it staged but did not finish putting in
/// place (finished now, see [`commit::recover`]). A dry run creates and
/// changes nothing; it only warns of an unfinished set.
fn lock(etc: &Path, options: &Options, report: &Reporter) -> Result<AccountLock, PasswdError> {
    if options.dry_run {
        let lock = AccountLock::for_dry_run(etc, options.wait)?;
        warn_pending(etc, report);
        return Ok(lock);
    }
    let lock = AccountLock::acquire(etc, options.wait)?;
    let chroot_dir = options.chroot_list.as_deref().and_then(Path::parent);
    pysk_common::atomic::remove_stale_in(std::iter::once(etc).chain(chroot_dir), report)?;
    commit::recover(etc, options.chroot_list.as_deref(), report)?;
    Ok(lock)
}

/// Syncs the root's files with the database: under the account files'
/// locks (a dry run waits for them too, creating no lock file, to read
/// what a sync would), validate, plan, refuse a mass removal, then show
/// the plan on `out` (dry run) or write and report each change on stderr,
/// and make the homes.
pub fn sync(
    options: &Options,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, PasswdError> {
    let (db, origin) = database::load(&options.users)?;
    let etc = options.root.join("etc");
    let lock = lock(&etc, options, report)?;
    let (accounts, plan) = prepare(&db, &origin, options, report)?;
    if !options.force
        && plan.removed > REMOVAL_FLOOR
        && plan.removed as f64 > plan.managed as f64 * REMOVAL_SHARE
    {
        return Err(PasswdError::Refused {
            origin,
            removed: plan.removed,
            managed: plan.managed,
        });
    }
    if options.dry_run {
        drop(lock);
        return dry_run(&plan, &accounts, options, out);
    }
    write(&etc, &plan)?;
    drop(lock);
    let mut summary = SyncSummary::new(&plan, false);
    if !options.json {
        for line in plan.files().iter().flat_map(|p| p.lines()) {
            report.info(line);
        }
    }
    let outcome = ensure_homes(&accounts, options, report, &mut summary);
    if options.json {
        print_json(&summary)?;
    }
    Ok(outcome)
}

/// Writes the changed files as one set, in the plan's order, keeping the
/// previous version where the plan says so.
fn write(etc: &Path, plan: &Plan) -> Result<(), PasswdError> {
    let changes: Vec<Change> = plan
        .write_order()
        .into_iter()
        .filter(|(planned, _)| planned.changed())
        .map(|(planned, backup)| Change {
            path: &planned.path,
            new: &planned.new,
            backup,
        })
        .collect();
    commit::write(etc, &changes)
}

/// A dry run finishes nothing: it says that a real sync would first.
fn warn_pending(etc: &Path, report: &Reporter) {
    if commit::pending(etc) {
        report.warn(format_args!(
            "{}: a sync was interrupted; the next sync or check finishes it first",
            etc.join(commit::INTENT).display()
        ));
    }
}

/// `--dry-run`: the plan and the homes that would be made on `out`, or
/// the `--json` document of the same.
fn dry_run(
    plan: &Plan,
    accounts: &[Account],
    options: &Options,
    out: &mut dyn Write,
) -> Result<Outcome, PasswdError> {
    let missing = homes::missing(&options.root, accounts);
    if options.json {
        let mut summary = SyncSummary::new(plan, true);
        summary.homes.created = missing.len();
        print_json(&summary)?;
    } else {
        let mut text = plan.show();
        for dir in missing {
            text.push_str(&format!("{}: would be created\n", dir.display()));
        }
        print(out, &text)?;
    }
    Ok(Outcome::Success)
}

/// Makes the homes right, each change reported on stderr (unless
/// `--json`) and counted, each problem warned about:
/// [`Outcome::Partial`] when there was one.
fn ensure_homes(
    accounts: &[Account],
    options: &Options,
    report: &Reporter,
    summary: &mut SyncSummary,
) -> Outcome {
    let say = |msg: String| {
        if !options.json {
            report.info(msg);
        }
    };
    let mut fixed = HashSet::new();
    for event in homes::ensure(&options.root, accounts, options.policy.shared_gid) {
        match event {
            Event::Created(path) => {
                summary.homes.created += 1;
                say(format!("{}: created", path.display()));
            }
            Event::Owner(path, uid, gid) => {
                say(format!(
                    "{}: owner was {uid}:{gid}, corrected",
                    path.display()
                ));
                fixed.insert(path);
            }
            Event::Mode(path, mode) => {
                say(format!(
                    "{}: mode was {mode:04o}, corrected",
                    path.display()
                ));
                fixed.insert(path);
            }
            Event::Problem(path, why) => {
                report.warn(format_args!("{}: {why}", path.display()));
                summary.problems += 1;
            }
        }
    }
    summary.homes.fixed = fixed.len();
    if summary.problems == 0 {
        Outcome::Success
    } else {
        Outcome::Partial
    }
}

/// Compares the root's files with the database (after finishing a sync a
/// crash interrupted, under the locks): [`Outcome::Success`]
/// when they match, else [`Outcome::Partial`]; the differences (the data
/// `check` is asked for) go to `out`, or the `--json` document to stdout.
pub fn check(
    options: &Options,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, PasswdError> {
    let (db, origin) = database::load(&options.users)?;
    let etc = options.root.join("etc");
    if commit::pending(&etc) {
        let _lock = AccountLock::acquire(&etc, options.wait)?;
        commit::recover(&etc, options.chroot_list.as_deref(), report)?;
    }
    let (_, plan) = prepare(&db, &origin, options, report)?;
    if options.json {
        print_json(&CheckSummary::new(&plan))?;
    } else {
        print(out, &plan.show())?;
    }
    Ok(if plan.changed() {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

/// Writes `text` to `out` (stdout).
pub fn print(out: &mut dyn Write, text: &str) -> Result<(), PasswdError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| pysk_common::Error::Stdout(e).into())
}

/// Reads the files, validates the database against them (each problem
/// reported), and plans the new files.
fn prepare(
    db: &Database,
    origin: &str,
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
    };
    let accounts = validated(db, origin, &rules, report)?;
    let plan = plan::plan(&files, &accounts, &options.policy, today())?;
    Ok((accounts, plan))
}

/// The accounts of `db` (from `origin`), or each problem reported and the
/// database rejected.
pub fn validated(
    db: &Database,
    origin: &str,
    rules: &Rules,
    report: &Reporter,
) -> Result<Vec<Account>, PasswdError> {
    validate::accounts(db, rules).map_err(|problems| {
        for problem in &problems {
            report.warn(format_args!("{origin}: {problem}"));
        }
        PasswdError::Rejected {
            origin: origin.to_owned(),
            problems: problems.len(),
        }
    })
}
