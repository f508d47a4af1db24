//! `pysk-passwd`: the control panel's user database in the system's
//! account files.
//!
//! - [`database`]: the JSON document, parsed; [`validate`] (with [`hash`])
//!   decides whether it may be written, all or nothing.
//! - [`files`]: the root's account files, read as bytes; [`plan`]: their
//!   new content, unmanaged lines untouched.
//! - [`pwlock`]: `.pwd.lock` and shadow-utils' `<file>.lock`, as the
//!   system's tools take them; [`sync`]: the locked read-plan-write and
//!   `check`; [`homes`]: home directories made without following links.
//!
//! The command line is in [`cli`]; this file dispatches it.

pub mod cli;
pub mod database;
pub mod error;
pub mod files;
pub mod hash;
pub mod homes;
pub mod plan;
pub mod pwlock;
pub mod sync;
pub mod validate;

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use pysk_common::atomic;
use pysk_common::exit::Outcome;
use pysk_common::switches::{Spec, Switches};

pub use cli::Cli;
use cli::{Command, HtpasswdArgs, Target};
pub use error::PasswdError;

/// The switches `pysk-passwd` reads, with their built-in defaults.
pub const SWITCHES: &[Spec] = &[
    Spec::new(
        "passwd_uid_min",
        "10000",
        "lowest uid (and gid) pysk manages",
    ),
    Spec::new(
        "passwd_uid_max",
        "19999",
        "highest uid (and gid) pysk manages",
    ),
    Spec::new(
        "passwd_ftp_shell",
        "/usr/sbin/nologin",
        "shell of the FTP-only accounts",
    ),
    Spec::new(
        "passwd_shared_group",
        "users",
        "group every user is a member of",
    ),
    Spec::new("passwd_shared_gid", "100", "its gid"),
    Spec::new(
        "passwd_chroot_list",
        "/etc/vsftpd.chroot_list",
        "vsftpd chroot list of the FTP accounts (empty: none)",
    ),
    Spec::new(
        "passwd_lock_timeout",
        "15",
        "seconds to wait for the account files' locks",
    ),
];

/// The tool's entry point: parses the command line, runs the subcommand.
pub fn try_main() -> Result<Outcome, PasswdError> {
    let Cli { common, command } = Cli::parse();
    let report = common.reporter("pysk-passwd");
    if let Command::Config = command {
        common.print_config(SWITCHES, &mut io::stdout().lock())?;
        return Ok(Outcome::Success);
    }
    let switches = common.switches()?;
    let mut out = io::stdout().lock();
    match command {
        // Printed above, before the switches are read for a subcommand.
        Command::Config => Ok(Outcome::Success),
        Command::Sync(args) => {
            let (db, source) = database::load(&args.target.users)?;
            let mut options = options(&args.target, &switches, common.quiet)?;
            options.dry_run = args.dry_run;
            options.force = args.force;
            if let Some(secs) = args.lock_timeout {
                options.lock_timeout = Duration::from_secs(secs);
            }
            sync::sync(&db, &source, &options, &report, &mut out)
        }
        Command::Check(args) => {
            let (db, source) = database::load(&args.target.users)?;
            let options = options(&args.target, &switches, common.quiet)?;
            sync::check(&db, &source, &options, &report, &mut out)
        }
        Command::Htpasswd(args) => htpasswd(&args, &switches, &report, &mut out),
    }
}

/// `htpasswd`: `name:hash` for each user that is not locked, FTP accounts
/// left out; the database is validated as for a sync, except against a
/// root's files.
fn htpasswd(
    args: &HtpasswdArgs,
    switches: &Switches,
    report: &pysk_common::report::Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, PasswdError> {
    let (db, source) = database::load(&args.users)?;
    let policy = policy(switches)?;
    let rules = validate::Rules {
        uids: &policy.uids,
        ftp_shell: &policy.ftp_shell,
        shells: None::<&BTreeSet<String>>,
        taken: &HashSet::new(),
        root: None,
    };
    let accounts = sync::validated(&db, &source, &rules, report)?;
    let mut text = String::new();
    for a in accounts.iter().filter(|a| a.owner.is_none()) {
        if !a.hash.starts_with(['!', '*']) {
            text.push_str(&format!("{}:{}\n", a.name, a.hash));
        }
    }
    match &args.output {
        Some(path) => {
            // A new file is not world-readable; an existing one keeps its
            // mode and owner.
            let mode = (!path.exists()).then_some(0o640);
            atomic::replace(
                path,
                text.as_bytes(),
                atomic::Options {
                    mode,
                    ..atomic::Options::default()
                },
            )?;
        }
        None => out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(PasswdError::Stdout)?,
    }
    Ok(Outcome::Success)
}

/// The sync options from the target and the switches.
fn options(
    target: &Target,
    switches: &Switches,
    quiet: bool,
) -> Result<sync::Options, PasswdError> {
    let chroot_list = switches.setting(SWITCHES, "passwd_chroot_list");
    let chroot_list = if chroot_list.is_empty() {
        None
    } else {
        Some(inside(&target.root, &chroot_list, "passwd_chroot_list")?)
    };
    Ok(sync::Options {
        root: target.root.clone(),
        policy: policy(switches)?,
        chroot_list,
        lock_timeout: Duration::from_secs(parsed(switches, "passwd_lock_timeout")?),
        dry_run: false,
        force: false,
        quiet,
    })
}

/// `path` (absolute on the live system) inside `root`.
fn inside(root: &Path, path: &str, key: &str) -> Result<PathBuf, PasswdError> {
    let parts = validate::normalise(path).map_err(|why| PasswdError::Setting {
        name: key.to_owned(),
        reason: format!("{path:?} {why}"),
    })?;
    Ok(parts.iter().fold(root.to_owned(), |p, part| p.join(part)))
}

fn policy(switches: &Switches) -> Result<plan::Policy, PasswdError> {
    let min: u32 = parsed(switches, "passwd_uid_min")?;
    let max: u32 = parsed(switches, "passwd_uid_max")?;
    let shared_gid: u32 = parsed(switches, "passwd_shared_gid")?;
    let setting_err = |name: &str, reason: String| PasswdError::Setting {
        name: name.to_owned(),
        reason,
    };
    if min == 0 || min > max {
        return Err(setting_err(
            "passwd_uid_min",
            format!("the range {min}-{max} is empty or includes root"),
        ));
    }
    if (min..=max).contains(&shared_gid) {
        return Err(setting_err(
            "passwd_shared_gid",
            format!("{shared_gid} lies inside the managed range {min}-{max}"),
        ));
    }
    let shared_group = switches.setting(SWITCHES, "passwd_shared_group");
    if shared_group.is_empty() || shared_group.contains(':') || shared_group.contains(',') {
        return Err(setting_err(
            "passwd_shared_group",
            format!("{shared_group:?} is not a group name"),
        ));
    }
    let ftp_shell = switches.setting(SWITCHES, "passwd_ftp_shell");
    if !ftp_shell.starts_with('/') || ftp_shell.chars().any(|c| c == ':' || c.is_control()) {
        return Err(setting_err(
            "passwd_ftp_shell",
            format!("{ftp_shell:?} is not an absolute path"),
        ));
    }
    Ok(plan::Policy {
        uids: min..=max,
        ftp_shell,
        shared_group,
        shared_gid,
    })
}

/// A switch parsed into `T`; a value that does not parse is a
/// configuration error at its file and line.
fn parsed<T: FromStr>(switches: &Switches, key: &str) -> Result<T, PasswdError>
where
    T::Err: std::fmt::Display,
{
    Ok(switches.setting_parsed(SWITCHES, key)?)
}
