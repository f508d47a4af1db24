//! Every switch of `pysk-backup`, with its built-in default written once
//! in [`SWITCHES`]: the command line beats the switch, which beats the
//! default, and each bad value is reported where it came from (the
//! switch's file and line, or the option).

use std::path::PathBuf;

use pysk_common::cli::WaitArgs;
use pysk_common::settings::{Settings, Spec};
use pysk_db::pg::connect::Target;

use crate::cli::{
    DrillArgs, DumpArgs, ListArgs, RestoreArgs, RestoreDbArgs, RunArgs, Selection, StatusArgs,
    VerifyArgs,
};
use crate::engine::{self, Kind};
use crate::error::BackupError;
use crate::{drill, dump, list, restore_db, restore_files, run, status, verify};

/// The directories every excluded path list starts from: Pysk's.
pub const DEFAULT_EXCLUDES: &str =
    "/proc /sys /dev /run /tmp /var/tmp /var/cache /lost+found /mnt /media";

/// The switches `pysk-backup` reads, with their built-in defaults.
pub const SWITCHES: &[Spec] = &[
    Spec::new(
        "backup_engine",
        "duplicity",
        "what makes the backup: duplicity or restic",
    ),
    Spec::new("backup_source", "/", "the tree that is backed up"),
    Spec::new(
        "backup_dump_dir",
        "/var/backups/pysk",
        "where the dump sets live (current, sets/)",
    )
    .option("--dir"),
    Spec::new(
        "backup_state_dir",
        "/var/lib/pysk/backup",
        "the lock, the last success, the drills, duplicity's cache, GnuPG's home",
    ),
    Spec::new(
        "backup_target",
        "",
        "where backups go, in the engine's own syntax: a duplicity URL (file:///srv/backup, \
         sftp://...) or a restic repository (/srv/backup, file:///srv/backup, sftp:host:/path)",
    ),
    Spec::new(
        "backup_passphrase_file",
        "/etc/pysk/backup.passphrase",
        "the backup's passphrase (mode 0600): duplicity's GPG passphrase, restic's password",
    ),
    Spec::new(
        "backup_full_if_older_than",
        "14D",
        "duplicity: a full backup when the last is older than this",
    ),
    Spec::new("backup_keep_full", "2", "duplicity: the full chains kept"),
    Spec::new("backup_keep_daily", "7", "restic: daily snapshots kept"),
    Spec::new("backup_keep_weekly", "4", "restic: weekly snapshots kept"),
    Spec::new("backup_keep_monthly", "6", "restic: monthly snapshots kept"),
    Spec::new(
        "backup_exclude",
        DEFAULT_EXCLUDES,
        "paths left out of the backup, separated by spaces",
    ),
    Spec::new(
        "backup_shrink_percent",
        "50",
        "a dump smaller than this percentage of the last good one fails",
    ),
    Spec::new(
        "backup_lock_wait_timeout",
        "60",
        "seconds a dump waits for a table's lock before it fails",
    ),
    Spec::new(
        "backup_notify_command",
        "",
        "run (no shell; split at blanks) with start, success or failure as its last argument",
    ),
    Spec::new("backup_wait", "0", "seconds a run waits for another's lock").option("--wait"),
    Spec::new(
        "db_pg_socket_dir",
        "/var/run/postgresql",
        "the directory of PostgreSQL's Unix socket",
    ),
    Spec::new(
        "db_pg_port",
        "5432",
        "PostgreSQL's port (it names the socket file)",
    ),
    Spec::new(
        "db_pg_superuser",
        "postgres",
        "the system account pg_dump runs as (peer authentication)",
    ),
    Spec::new(
        "db_connect_timeout",
        "10",
        "seconds a database server may take to answer a connection before the run gives up (exit 69)",
    ),
    Spec::new(
        "db_mysql_socket",
        "/run/mysqld/mysqld.sock",
        "MariaDB's Unix socket, reached as root (unix_socket authentication)",
    ),
    Spec::new(
        "db_name_pattern",
        pysk_db::names::DEFAULT_PATTERN,
        "the names restore-db gives a database (a regular expression)",
    ),
];

/// The lock file every run that changes the dump sets or the backup
/// takes.
pub fn lock_path(settings: &Settings) -> Result<PathBuf, BackupError> {
    Ok(settings
        .path("backup_state_dir", None)?
        .join("pysk-backup.lock"))
}

/// The engine and everything it needs, from the switches.
pub fn engine(settings: &Settings) -> Result<engine::Config, BackupError> {
    let target = settings.with("backup_target", None, |t| match t.trim() {
        "" => Err("empty; give a duplicity URL or a restic repository".to_owned()),
        t => Ok(t.to_owned()),
    })?;
    engine_with(settings, target)
}

/// The engine's settings but its target, which is given.
fn engine_with(settings: &Settings, target: String) -> Result<engine::Config, BackupError> {
    Ok(engine::Config {
        kind: settings.parsed::<Kind>("backup_engine", None)?,
        target,
        passphrase_file: settings.path("backup_passphrase_file", None)?,
        state_dir: settings.path("backup_state_dir", None)?,
        source: settings.path("backup_source", None)?,
        excludes: settings.with("backup_exclude", None, absolute_paths)?,
        full_if_older_than: settings.with("backup_full_if_older_than", None, |t| {
            match t.trim() {
                "" => Err("empty; give a duplicity time such as 14D".to_owned()),
                t if t.contains(char::is_whitespace) => {
                    Err("one duplicity time: no blanks".to_owned())
                }
                t => Ok(t.to_owned()),
            }
        })?,
        // 1 is safe: retention keeps the chains back to the verified one
        // (engine::duplicity's keep_full), so the older chain stays until
        // the new one is proven.
        keep_full: settings.count("backup_keep_full", None, 1..=1000)?,
        keep_daily: settings.count("backup_keep_daily", None, 1..=100_000)?,
        keep_weekly: settings.count("backup_keep_weekly", None, 0..=100_000)?,
        keep_monthly: settings.count("backup_keep_monthly", None, 0..=100_000)?,
        dump_dir: settings.path("backup_dump_dir", None)?,
        host: pysk_common::cli::local_fqdn(),
    })
}

/// Every switch resolved as the commands resolve them, for `config`:
/// the first bad value is reported with its file and line (78), as `run`
/// would report it. An empty `backup_target` passes (`dump` and `drill`
/// need none); the dump directory must be one the backup holds.
pub fn check(settings: &Settings) -> Result<(), BackupError> {
    let selection = Selection {
        postgres: false,
        mysql: false,
        only: Vec::new(),
        exclude: Vec::new(),
        force: false,
    };
    dump_with(settings, &selection, None, false, &WaitArgs { wait: None })?;
    settings.with("db_name_pattern", None, pysk_db::names::Rule::new)?;
    settings.string("backup_notify_command", None)?;
    let target = settings.string("backup_target", None)?;
    let config = engine_with(settings, target)?;
    dumps_in_the_backup(settings, &config)
}

/// Refuses (78) a dump directory the backup would not hold: not below
/// `backup_source`, or under a path of `backup_exclude` below it; a run would
/// otherwise report success without the databases.
fn dumps_in_the_backup(settings: &Settings, config: &engine::Config) -> Result<(), BackupError> {
    let dir = &config.dump_dir;
    // Only the excludes below the source take effect (the engines are
    // given those alone): a /tmp above a source in /tmp excludes nothing.
    let excluded = config
        .excludes
        .iter()
        .filter(|e| e.starts_with(&config.source) && **e != config.source)
        .find(|e| dir.starts_with(e));
    let why = match excluded {
        _ if !dir.starts_with(&config.source) => format!(
            "{} is not below backup_source {}",
            dir.display(),
            config.source.display()
        ),
        Some(excluded) => format!(
            "{} lies under {} of backup_exclude",
            dir.display(),
            excluded.display()
        ),
        None => return Ok(()),
    };
    let reason = format!("{why}: the dumps would not be in the backup");
    Err(settings.invalid("backup_dump_dir", None, reason).into())
}

/// Paths separated by blanks, each absolute.
fn absolute_paths(text: &str) -> Result<Vec<PathBuf>, String> {
    let paths = text.split_whitespace().map(PathBuf::from);
    paths
        .map(|p| match p.is_absolute() {
            true => Ok(p),
            false => Err(format!("{}: not an absolute path", p.display())),
        })
        .collect()
}

/// The options of `run`.
pub fn run(settings: &Settings, args: &RunArgs) -> Result<run::Options, BackupError> {
    let notify = settings.string("backup_notify_command", None)?;
    let dry_run = args.dry_run.dry_run;
    let engine = engine(settings)?;
    dumps_in_the_backup(settings, &engine)?;
    Ok(run::Options {
        engine,
        dump: dump_with(settings, &args.selection, None, dry_run, &args.wait)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "backup_wait")?,
        notify: notify.split_whitespace().map(str::to_owned).collect(),
        dry_run,
        json: args.json.json,
    })
}

/// The options of `verify`.
pub fn verify(settings: &Settings, args: &VerifyArgs) -> Result<verify::Options, BackupError> {
    Ok(verify::Options {
        engine: engine(settings)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "backup_wait")?,
        compare_data: args.compare_data,
        json: args.json.json,
    })
}

/// The options of `status`.
pub fn status(settings: &Settings, args: &StatusArgs) -> Result<status::Options, BackupError> {
    Ok(status::Options {
        engine: engine(settings)?,
        state_dir: settings.path("backup_state_dir", None)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "backup_wait")?,
        json: args.json.json,
    })
}

/// `--time`, if given, in a form the engine takes (exit 2 otherwise,
/// before the engine runs).
fn time(config: &engine::Config, time: Option<&String>) -> Result<Option<String>, BackupError> {
    let Some(time) = time else {
        return Ok(None);
    };
    match engine::time::check(config.kind, time) {
        Ok(()) => Ok(Some(time.clone())),
        Err(why) => Err(pysk_common::Error::option("--time", why).into()),
    }
}

/// The options of `list`.
pub fn list(settings: &Settings, args: &ListArgs) -> Result<list::Options, BackupError> {
    let engine = engine(settings)?;
    Ok(list::Options {
        time: time(&engine, args.time.as_ref())?,
        engine,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "backup_wait")?,
        json: args.json.json,
    })
}

/// The options of `restore` (a file or directory; `restore-db` is
/// another's).
pub fn restore(
    settings: &Settings,
    args: &RestoreArgs,
) -> Result<restore_files::Options, BackupError> {
    let engine = engine(settings)?;
    Ok(restore_files::Options {
        time: time(&engine, args.time.as_ref())?,
        engine,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "backup_wait")?,
        path: args.path.clone(),
        to: args.to.clone(),
    })
}
/// PostgreSQL's socket and superuser, from the switches.
fn pg_target(settings: &Settings) -> Result<Target, BackupError> {
    Ok(Target {
        socket_dir: settings.path("db_pg_socket_dir", None)?,
        port: settings.count("db_pg_port", None, 1u16..=u16::MAX)?,
        superuser: settings.string("db_pg_superuser", None)?,
        connect_timeout: settings.timeout("db_connect_timeout", None)?,
    })
}

/// The options of `drill`; the engine only with `--from-backup`.
pub fn drill(settings: &Settings, args: &DrillArgs) -> Result<drill::Options, BackupError> {
    Ok(drill::Options {
        dump_dir: settings.path("backup_dump_dir", None)?,
        state_dir: settings.path("backup_state_dir", None)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "backup_wait")?,
        from_backup: match args.from_backup {
            true => Some(engine(settings)?),
            false => None,
        },
        pg_superuser: settings.string("db_pg_superuser", None)?,
        json: args.json.json,
    })
}

/// The options of `restore-db`; the engine only with `--time`.
pub fn restore_db(
    settings: &Settings,
    args: &RestoreDbArgs,
) -> Result<restore_db::Options, BackupError> {
    let rule = settings.with("db_name_pattern", None, pysk_db::names::Rule::new)?;
    Ok(restore_db::Options {
        dump_dir: settings.path("backup_dump_dir", None)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "backup_wait")?,
        name: args.name.clone(),
        from_backup: match &args.time {
            Some(given) => {
                let engine = engine(settings)?;
                time(&engine, Some(given))?.map(|t| (t, engine))
            }
            None => None,
        },
        as_name: args.as_name.clone(),
        rule,
        pg: pg_target(settings)?,
        mysql_socket: settings.path("db_mysql_socket", None)?,
        dry_run: args.dry_run.dry_run,
    })
}

/// The options of `dump`.
pub fn dump(settings: &Settings, args: &DumpArgs) -> Result<dump::Options, BackupError> {
    dump_with(
        settings,
        &args.selection,
        args.dir.clone(),
        args.dry_run.dry_run,
        &args.wait,
    )
}

/// A dump's options from its parts, for `dump` and for `run` (which has
/// no `--dir`).
pub fn dump_with(
    settings: &Settings,
    selection: &Selection,
    dir: Option<PathBuf>,
    dry_run: bool,
    wait: &WaitArgs,
) -> Result<dump::Options, BackupError> {
    Ok(dump::Options {
        dir: settings.path("backup_dump_dir", dir)?,
        lock: lock_path(settings)?,
        wait: wait.resolve(settings, "backup_wait")?,
        postgres: selection.postgres,
        mysql: selection.mysql,
        only: selection.only.clone(),
        exclude: selection.exclude.clone(),
        force: selection.force,
        shrink_percent: settings.count("backup_shrink_percent", None, 0u64..=100)?,
        lock_wait: settings.timeout("backup_lock_wait_timeout", None)?,
        pg: pg_target(settings)?,
        mysql_socket: settings.path("db_mysql_socket", None)?,
        dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_is_the_tools_and_has_a_description() {
        for spec in SWITCHES {
            assert!(
                spec.key.starts_with("backup_") || spec.key.starts_with("db_"),
                "{}",
                spec.key
            );
            assert!(
                !spec.help.trim().is_empty(),
                "{} has no description",
                spec.key
            );
        }
    }

    fn settings(text: &str) -> (tempfile::TempDir, Settings) {
        use clap::Parser;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("serverconfig/default");
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, text).expect("write");
        let path = dir.path().to_str().expect("utf-8").to_owned();
        let args = [
            "pysk-backup",
            "--host",
            "h.example",
            "--config-dir",
            &path,
            "config",
        ];
        let cli = crate::cli::Cli::try_parse_from(args).expect("parses");
        let report = cli.common.reporter(crate::cli::NAME);
        let settings = cli.common.settings(SWITCHES, &report).expect("settings");
        (dir, settings)
    }

    #[test]
    fn the_engine_needs_a_target_and_takes_only_absolute_excludes() {
        let (_dir, none) = settings("");
        let err = engine(&none).expect_err("no target").to_string();
        assert!(
            err.contains("backup_target") && err.contains("empty"),
            "{err}"
        );
        let (_dir, given) = settings(
            "backup_target=\"file:///srv/b\"\nbackup_engine=\"restic\"\nbackup_exclude=\"/a /b\"\n",
        );
        let config = engine(&given).expect("resolves");
        assert_eq!(config.kind, Kind::Restic);
        assert_eq!(config.excludes, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(
            (
                config.keep_full,
                config.keep_daily,
                config.full_if_older_than.as_str()
            ),
            (2, 7, "14D")
        );
        let (_dir, relative) = settings("backup_target=\"x\"\nbackup_exclude=\"tmp\"\n");
        let err = engine(&relative).expect_err("relative").to_string();
        assert!(err.contains("tmp: not an absolute path"), "{err}");
        let (_dir, zero) = settings("backup_target=\"x\"\nbackup_keep_full=\"0\"\n");
        assert!(
            engine(&zero).is_err(),
            "keeping no full chain would delete the newest"
        );
    }

    #[test]
    fn run_refuses_a_dump_dir_the_backup_would_not_hold() {
        let run_args = |text: &str| {
            let (dir, s) = settings(text);
            let args = match <crate::cli::Cli as clap::Parser>::parse_from(["pysk-backup", "run"])
                .command
            {
                crate::cli::Command::Run(args) => args,
                other => panic!("not run: {other:?}"),
            };
            (dir, run(&s, &args).map(|_| ()))
        };
        let base = "backup_target=\"x\"\nbackup_source=\"/srv\"\n";
        let (_d, outside) = run_args(&format!("{base}backup_dump_dir=\"/var/backups/pysk\"\n"));
        let err = outside.expect_err("outside the source");
        assert_eq!(pysk_common::exit::ToolError::exit_code(&err), 78);
        let text = err.to_string();
        assert!(
            text.contains("backup_dump_dir: /var/backups/pysk is not below backup_source /srv"),
            "{text}"
        );
        let (_d, excluded) = run_args(&format!(
            "{base}backup_dump_dir=\"/srv/tmp/d\"\nbackup_exclude=\"/srv/tmp\"\n"
        ));
        let text = excluded.expect_err("excluded").to_string();
        assert!(
            text.contains("/srv/tmp/d lies under /srv/tmp of backup_exclude"),
            "{text}"
        );
        let (_d, fine) = run_args(&format!("{base}backup_dump_dir=\"/srv/dumps\"\n"));
        fine.expect("below the source, not excluded");
        // An exclude above the source is not given to the engine, so it
        // leaves out nothing of it.
        let (_d, above) = run_args(
            "backup_target=\"x\"\nbackup_source=\"/tmp/site\"\n\
             backup_dump_dir=\"/tmp/site/dumps\"\nbackup_exclude=\"/tmp /proc\"\n",
        );
        above.expect("/tmp holds the source, it does not exclude the dumps");
    }

    fn dump_args(argv: &[&str]) -> DumpArgs {
        use clap::Parser;
        let mut full = vec!["pysk-backup", "dump"];
        full.extend_from_slice(argv);
        match crate::cli::Cli::parse_from(full).command {
            crate::cli::Command::Dump(args) => args,
            other => panic!("not dump: {other:?}"),
        }
    }

    #[test]
    fn dump_resolves_from_defaults_from_a_file_and_from_options() {
        use pysk_common::switches::Switches;
        let empty = Settings::new(SWITCHES, Switches::default());
        let o = dump(&empty, &dump_args(&[])).expect("defaults");
        assert_eq!(o.dir, PathBuf::from("/var/backups/pysk"));
        assert_eq!(
            o.lock,
            PathBuf::from("/var/lib/pysk/backup/pysk-backup.lock")
        );
        assert_eq!((o.shrink_percent, o.lock_wait.as_secs()), (50, 60));
        assert_eq!(
            o.pg.socket(),
            PathBuf::from("/var/run/postgresql/.s.PGSQL.5432")
        );
        assert_eq!(o.mysql_socket, PathBuf::from("/run/mysqld/mysqld.sock"));
        assert!(!o.postgres && !o.mysql && !o.force && !o.dry_run);

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("serverconfig/default");
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(
            &file,
            "backup_dump_dir=/srv/dumps\nbackup_shrink_percent=30\ndb_pg_port=5433\n",
        )
        .expect("write");
        let settings = Settings::new(SWITCHES, Switches::load(dir.path(), "h").expect("load"));
        let args = dump_args(&[
            "--dir",
            "/tmp/d",
            "--postgres",
            "--only",
            "shop",
            "--dry-run",
        ]);
        let o = dump(&settings, &args).expect("file");
        assert_eq!(o.dir, PathBuf::from("/tmp/d"));
        assert_eq!((o.shrink_percent, o.pg.port), (30, 5433));
        assert!(o.postgres && o.dry_run && o.only == ["shop"]);

        std::fs::write(&file, "backup_shrink_percent=150\n").expect("write");
        let settings = Settings::new(SWITCHES, Switches::load(dir.path(), "h").expect("load"));
        let err = dump(&settings, &dump_args(&[])).expect_err("out of range");
        assert!(err.to_string().contains("backup_shrink_percent"), "{err}");
    }
}
