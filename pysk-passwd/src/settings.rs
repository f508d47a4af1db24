//! Every option of every subcommand, resolved in one place: the command
//! line beats the switch, which beats the built-in default written once in
//! [`SWITCHES`]. Each bad value is reported where it came from (the
//! switch's file and line, the option, or the built-in default).

use std::path::{Path, PathBuf};

use pysk_common::settings::{Settings, Spec};

use crate::cli::{CheckArgs, HtpasswdArgs, SyncArgs, Target};
use crate::error::PasswdError;
use crate::htpasswd;
use crate::plan::Policy;
use crate::sync;
use crate::validate::normalise;

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
        "passwd_wait",
        "15",
        "seconds to wait for the account files' locks (sync)",
    )
    .option("--wait")
    .replaces("passwd_lock_timeout"),
];

/// The options of `sync`.
pub fn sync(settings: &Settings, args: &SyncArgs) -> Result<sync::Options, PasswdError> {
    Ok(sync::Options {
        wait: args.wait.resolve(settings, "passwd_wait")?,
        dry_run: args.dry_run.dry_run,
        force: args.force,
        json: args.json.json,
        ..target(settings, &args.target)?
    })
}

/// The options of `check`: those of a sync that writes nothing.
pub fn check(settings: &Settings, args: &CheckArgs) -> Result<sync::Options, PasswdError> {
    Ok(sync::Options {
        json: args.json.json,
        ..target(settings, &args.target)?
    })
}

/// The options of `htpasswd`.
pub fn htpasswd(
    settings: &Settings,
    args: &HtpasswdArgs,
) -> Result<htpasswd::Options, PasswdError> {
    Ok(htpasswd::Options {
        users: args.users.clone(),
        output: args.output.clone(),
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
        policy: policy(settings)?,
    })
}

/// What `sync` and `check` share: the database, the root, the switches
/// that shape the entries, the chroot list; the rest as for a check.
fn target(settings: &Settings, target: &Target) -> Result<sync::Options, PasswdError> {
    Ok(sync::Options {
        users: target.users.clone(),
        root: target.root.clone(),
        policy: policy(settings)?,
        chroot_list: chroot_list(settings, &target.root)?,
        wait: std::time::Duration::ZERO,
        dry_run: false,
        force: false,
        json: false,
    })
}

/// `passwd_chroot_list` inside `root` (`None` when empty); its directory
/// must exist, so that a sync can write every file or none (and a check
/// does not report as drift a state no sync could reach).
///
/// The switch names the list on the live system: it must be absolute, as
/// every path in a switch ([`Settings::optional_path`]); it is then
/// normalised as the homes are (no `..`) and taken inside `root`.
fn chroot_list(settings: &Settings, root: &Path) -> Result<Option<PathBuf>, PasswdError> {
    const KEY: &str = "passwd_chroot_list";
    if settings.optional_path(KEY, None)?.is_none() {
        return Ok(None);
    }
    let list = settings.with(KEY, None, |text| {
        let parts = normalise(text).map_err(str::to_owned)?;
        Ok(parts.iter().fold(root.to_owned(), |p, part| p.join(part)))
    })?;
    if !list.parent().is_some_and(Path::is_dir) {
        let reason = format!("{}: its directory does not exist", list.display());
        return Err(settings.invalid(KEY, None, reason).into());
    }
    Ok(Some(list))
}

/// The switches that shape the entries, each checked on its own and the
/// uid range and shared gid against each other.
fn policy(settings: &Settings) -> Result<Policy, PasswdError> {
    let min: u32 = settings.parsed("passwd_uid_min", None)?;
    if min == 0 {
        let text = settings.string("passwd_uid_min", None)?;
        let reason = format!("{text:?}: uid 0 is root's and never managed");
        return Err(settings.invalid("passwd_uid_min", None, reason).into());
    }
    let max: u32 = settings.parsed("passwd_uid_max", None)?;
    if min > max {
        let reason = format!("{min} is above passwd_uid_max {max}: the managed range is empty");
        return Err(settings.invalid("passwd_uid_min", None, reason).into());
    }
    let shared_gid: u32 = settings.parsed("passwd_shared_gid", None)?;
    if (min..=max).contains(&shared_gid) {
        let reason = format!("{shared_gid} lies inside the managed range {min}-{max}");
        return Err(settings.invalid("passwd_shared_gid", None, reason).into());
    }
    let shared_group = settings.with("passwd_shared_group", None, |text| {
        if text.is_empty() || text.contains([':', ',']) || text.chars().any(char::is_control) {
            return Err("not a group name".to_owned());
        }
        Ok(text.to_owned())
    })?;
    let ftp_shell = settings.with("passwd_ftp_shell", None, |text| {
        if !text.starts_with('/') || text.chars().any(|c| c == ':' || c.is_control()) {
            return Err("not an absolute path".to_owned());
        }
        Ok(text.to_owned())
    })?;
    Ok(Policy {
        uids: min..=max,
        ftp_shell,
        shared_group,
        shared_gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    use clap::Parser;
    use pysk_common::exit::{self, ToolError};

    use crate::cli::{Cli, Command};

    /// A config directory whose `serverconfig/default` holds `text`.
    fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("serverconfig/default");
        fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        fs::write(&file, text).expect("write");
        (dir, file)
    }

    /// The command line `args` (after the tool's name and the shared
    /// options) parsed and its settings loaded from `dir`.
    fn parse(dir: &Path, args: &[&str]) -> (Command, Settings) {
        let mut line = vec!["pysk-passwd", "--host", "h.example", "--config-dir"];
        line.push(dir.to_str().expect("utf-8"));
        line.extend(args);
        let cli = Cli::try_parse_from(line).expect("parses");
        let report = cli.common.reporter(crate::cli::NAME);
        let settings = cli.common.settings(SWITCHES, &report).expect("settings");
        (cli.command, settings)
    }

    /// Resolves every subcommand of `line`'s kind, as `try_main` does.
    fn resolve(command: &Command, settings: &Settings) -> Result<(), PasswdError> {
        match command {
            Command::Sync(args) => sync(settings, args).map(drop),
            Command::Check(args) => check(settings, args).map(drop),
            Command::Htpasswd(args) => htpasswd(settings, args).map(drop),
            Command::Config => Ok(()),
        }
    }

    /// Every subcommand and branch, over the root `root`.
    fn every_subcommand(root: &str) -> Vec<Vec<String>> {
        let lines: [&[&str]; 8] = [
            &["sync", "--users", "-"],
            &["sync", "--users", "-", "--dry-run", "--force", "--json"],
            &["sync", "--users", "-", "--wait", "3"],
            &["check", "--users", "-", "--json"],
            &["htpasswd", "--users", "-"],
            &["htpasswd", "--users", "-", "--output", "x", "--dry-run"],
            &[
                "htpasswd",
                "--users",
                "-",
                "--output",
                "x",
                "--dry-run",
                "--json",
            ],
            &["config"],
        ];
        lines
            .iter()
            .map(|l| {
                let mut l: Vec<String> = l.iter().map(|a| (*a).to_owned()).collect();
                if matches!(l[0].as_str(), "sync" | "check") {
                    l.extend(["--root".to_owned(), root.to_owned()]);
                }
                l
            })
            .collect()
    }

    #[test]
    fn every_subcommand_resolves_from_an_empty_config_and_from_a_file() {
        let root = tempfile::tempdir().expect("root");
        fs::create_dir_all(root.path().join("etc/vsftpd")).expect("mkdir");
        let root_arg = root.path().to_str().expect("utf-8");
        let file = "passwd_uid_min=20000\npasswd_uid_max=29999\npasswd_ftp_shell=/bin/false\n\
                    passwd_shared_group=staff\npasswd_shared_gid=50\n\
                    passwd_chroot_list=/etc/vsftpd/chroot_list\npasswd_wait=\" 7 \"\n";
        for text in ["", file] {
            let (dir, _) = config(text);
            for line in every_subcommand(root_arg) {
                let args: Vec<&str> = line.iter().map(String::as_str).collect();
                let (command, settings) = parse(dir.path(), &args);
                resolve(&command, &settings).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            }
        }
        let (dir, _) = config(file);
        let line = ["sync", "--users", "-", "--root", root_arg];
        let (Command::Sync(args), settings) = parse(dir.path(), &line) else {
            panic!("not sync")
        };
        let options = sync(&settings, &args).expect("sync");
        assert_eq!(options.wait, Duration::from_secs(7));
        assert_eq!(options.policy.uids, 20000..=29999);
        assert_eq!(
            (
                options.policy.shared_group.as_str(),
                options.policy.shared_gid
            ),
            ("staff", 50)
        );
        assert_eq!(options.policy.ftp_shell, "/bin/false");
        assert_eq!(
            options.chroot_list,
            Some(root.path().join("etc/vsftpd/chroot_list"))
        );
    }

    #[test]
    fn the_defaults_and_the_command_line() {
        let (dir, _) = config("passwd_wait=7\n");
        let root = tempfile::tempdir().expect("root");
        fs::create_dir_all(root.path().join("etc")).expect("mkdir");
        let root_arg = root.path().to_str().expect("utf-8");
        let line = ["sync", "--users", "-", "--root", root_arg, "--wait", "0.5"];
        let (Command::Sync(args), settings) = parse(dir.path(), &line) else {
            panic!("not sync")
        };
        let options = sync(&settings, &args).expect("sync");
        assert_eq!(options.wait, Duration::from_millis(500));
        assert_eq!(options.policy.uids, 10000..=19999);
        assert_eq!(
            options.chroot_list,
            Some(root.path().join("etc/vsftpd.chroot_list"))
        );
        // The old spelling still works, for one release.
        let line = [
            "sync",
            "--users",
            "-",
            "--root",
            root_arg,
            "--lock-timeout",
            "2",
        ];
        let (Command::Sync(args), settings) = parse(dir.path(), &line) else {
            panic!("not sync")
        };
        assert_eq!(
            sync(&settings, &args).expect("sync").wait,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn an_empty_chroot_list_is_none_even_in_a_root_without_its_directory() {
        let (dir, _) = config("passwd_chroot_list=\n");
        let line = ["sync", "--users", "-", "--root", "/nonexistent"];
        let (Command::Sync(args), settings) = parse(dir.path(), &line) else {
            panic!("not sync")
        };
        assert_eq!(sync(&settings, &args).expect("sync").chroot_list, None);
    }

    /// The error `switches` give for `sync`, with the switches file's path.
    fn sync_error(switches: &str, line: &[&str]) -> (PasswdError, PathBuf) {
        let (dir, file) = config(switches);
        let (Command::Sync(args), settings) = parse(dir.path(), line) else {
            panic!("not sync")
        };
        let err = sync(&settings, &args).map(drop).expect_err("refused");
        (err, file)
    }

    #[test]
    fn a_bad_switch_is_named_with_its_file_and_line() {
        let line = ["sync", "--users", "-"];
        for (text, says) in [
            (
                "# uids\npasswd_uid_min=ten\n",
                "passwd_uid_min: \"ten\": expected a whole number",
            ),
            (
                "\npasswd_uid_min=0\n",
                "passwd_uid_min: \"0\": uid 0 is root's",
            ),
            (
                "\npasswd_uid_min=30000\n",
                "passwd_uid_min: 30000 is above passwd_uid_max 19999: the managed range is empty",
            ),
            (
                "\npasswd_shared_gid=10500\n",
                "passwd_shared_gid: 10500 lies inside the managed range 10000-19999",
            ),
            (
                "\npasswd_shared_group=a:b\n",
                "passwd_shared_group: \"a:b\": not a group name",
            ),
            (
                "\npasswd_ftp_shell=nologin\n",
                "passwd_ftp_shell: \"nologin\": not an absolute path",
            ),
            (
                "\npasswd_chroot_list=etc/list\n",
                "passwd_chroot_list: \"etc/list\": not an absolute path",
            ),
            (
                "\npasswd_chroot_list=/etc/../list\n",
                "passwd_chroot_list: \"/etc/../list\": contains \"..\"",
            ),
            (
                "\npasswd_wait=soon\n",
                "passwd_wait: \"soon\": expected seconds",
            ),
        ] {
            let (err, file) = sync_error(text, &line);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("{}:2: {says}", file.display())),
                "{message}"
            );
            assert_eq!(err.exit_code(), exit::CONFIG, "{message}");
        }
    }

    #[test]
    fn a_bad_option_is_named_as_the_option_and_a_default_as_such() {
        let (err, _) = sync_error("", &["sync", "--users", "-", "--wait=-1"]);
        assert_eq!(
            err.to_string(),
            "--wait: \"-1\": expected seconds from 0 to 86400"
        );
        assert_eq!(err.exit_code(), exit::USAGE);
        // The default chroot list, in a root without its directory.
        let line = ["sync", "--users", "-", "--root", "/nonexistent"];
        let (err, _) = sync_error("", &line);
        assert_eq!(
            err.to_string(),
            "passwd_chroot_list (built-in default): \
             /nonexistent/etc/vsftpd.chroot_list: its directory does not exist"
        );
        assert_eq!(err.exit_code(), exit::CONFIG);
        // A check refuses it alike: no sync could reach that state.
        let (dir, _) = config("");
        let (Command::Check(args), settings) = parse(
            dir.path(),
            &["check", "--users", "-", "--root", "/nonexistent"],
        ) else {
            panic!("not check")
        };
        let err = check(&settings, &args).expect_err("missing directory");
        assert_eq!(err.exit_code(), exit::CONFIG);
    }

    #[test]
    fn a_renamed_switch_is_warned_about_with_its_new_name() {
        let (dir, file) = config("passwd_lock_timeout=30\npasswd_wiat=3\n");
        let (_, settings) = parse(dir.path(), &["config"]);
        assert_eq!(
            settings.unknown(),
            [
                format!(
                    "{}:1: passwd_lock_timeout: renamed to passwd_wait; read as passwd_wait \
                     for this release, rename it",
                    file.display()
                ),
                format!(
                    "{}:2: passwd_wiat: not a switch this tool reads (misspelt, or \
                     retired?); ignored",
                    file.display()
                )
            ]
        );
    }
}
