//! Every switch of `pysk-db`, with its built-in default written once in
//! [`SWITCHES`]: the command line beats the switch, which beats the
//! default, and each bad value is reported where it came from (the
//! switch's file and line, or the option).

use pysk_common::settings::{Settings, Spec};

use crate::cli::{
    AddDbArgs, CreateArgs, DropArgs, ListArgs, MakeArgs, MysqlCreateArgs, PasswordArgs, SetupArgs,
    VacuumArgs,
};
use crate::error::DbError;
use crate::mysql;
use crate::mysql::hash::Auth;
use crate::names::{self, Rule};
use crate::pg::connect::Target;
use crate::pg::{create, drop, password, setup, vacuum};

/// The switches `pysk-db` reads, with their built-in defaults.
pub const SWITCHES: &[Spec] = &[
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
        "the system account PostgreSQL's superuser is reached as (peer authentication)",
    ),
    Spec::new(
        "db_connect_timeout",
        "10",
        "seconds a server may take to answer a connection, authentication included, \
         before the run gives up (exit 69)",
    ),
    Spec::new(
        "db_mysql_socket",
        "/run/mysqld/mysqld.sock",
        "MariaDB's Unix socket, reached as root (unix_socket authentication)",
    ),
    Spec::new(
        "db_mysql_auth",
        "mysql_native_password",
        "how MariaDB accounts are made: mysql_native_password (every client) or ed25519 \
         (not PHP's mysqlnd)",
    ),
    Spec::new(
        "db_name_pattern",
        names::DEFAULT_PATTERN,
        "the regular expression every database and account name must match",
    ),
    Spec::new(
        "db_lock_timeout",
        "5",
        "seconds maintenance waits for a table's lock before it skips the table",
    )
    .option("--lock-timeout"),
    Spec::new(
        "db_state_dir",
        "/var/lib/pysk/db",
        "where the lock files of mutating and maintenance runs live",
    ),
    Spec::new(
        "db_wait",
        "0",
        "seconds a mutating run waits for another's lock",
    )
    .option("--wait"),
];

/// The PostgreSQL server: its socket and superuser, whose system account
/// must exist (a bad `db_pg_superuser` otherwise: exit 78).
pub fn pg_target(settings: &Settings) -> Result<Target, DbError> {
    let target = pg_server(settings)?;
    if let Ok(None) = nix::unistd::User::from_name(&target.superuser) {
        return Err(settings
            .invalid(
                "db_pg_superuser",
                None,
                format!("{:?}: no system account of that name", target.superuser),
            )
            .into());
    }
    Ok(target)
}

/// The PostgreSQL server, its superuser's account not looked up: `list`
/// says a server that is not here, and a machine without PostgreSQL may
/// have no such account.
fn pg_server(settings: &Settings) -> Result<Target, DbError> {
    Ok(Target {
        socket_dir: settings.path("db_pg_socket_dir", None)?,
        port: settings.parsed("db_pg_port", None)?,
        superuser: settings.string("db_pg_superuser", None)?,
        connect_timeout: settings.timeout("db_connect_timeout", None)?,
    })
}

/// The options of `pg setup`.
pub fn pg_setup(settings: &Settings, args: &SetupArgs) -> Result<setup::Options, DbError> {
    Ok(setup::Options {
        target: pg_target(settings)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The options of `pg create`: the names checked by the rule before any
/// connection, the password read from its file (refused when others may
/// read it).
pub fn pg_create(settings: &Settings, args: &CreateArgs) -> Result<create::Options, DbError> {
    let rule = name_rule(settings)?;
    let (database, owner) = pg_names(&rule, &args.database, &args.owner)?;
    Ok(create::Options {
        target: pg_target(settings)?,
        database,
        owner,
        password: Some(crate::password::from_options(
            args.password_file.as_deref(),
            args.generate_password.as_deref(),
        )?),
        make: make(&rule, &args.make)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The database and owner of `pg create`/`add-db`: each by the name
/// rule, neither beginning with `pg_` (PostgreSQL keeps those for its own
/// roles, and the database names a role), and not the same name, since
/// the database's role is a group role of its own.
fn pg_names(rule: &Rule, database: &str, owner: &str) -> Result<(String, String), DbError> {
    let database = rule.check("database", database).map_err(DbError::Name)?;
    let owner = rule.check("owner", owner).map_err(DbError::Name)?;
    for (what, name) in [("database", database), ("owner", owner)] {
        if name.starts_with("pg_") {
            return Err(DbError::Name(format!(
                "{what} \"{}\": PostgreSQL keeps role names beginning with pg_ for its own",
                names::shown(name)
            )));
        }
    }
    if database == owner {
        return Err(DbError::Name(format!(
            "the owner {owner} has the database's name: the database's role {database} is a \
             NOLOGIN group role of its own, so the owner needs another name"
        )));
    }
    Ok((database.to_owned(), owner.to_owned()))
}

/// `CREATE DATABASE`'s options: the template checked by the name rule,
/// encoding and locale as plain words (they become quoted literals).
fn make(rule: &Rule, args: &MakeArgs) -> Result<create::Make, DbError> {
    let word = |option: &str, value: &Option<String>| -> Result<Option<String>, DbError> {
        match value {
            Some(v)
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)) =>
            {
                Err(pysk_common::Error::option(
                    option,
                    format!("{:?}: not an encoding or locale name", v),
                )
                .into())
            }
            other => Ok(other.clone()),
        }
    };
    let template = match &args.template {
        Some(t) => Some(rule.check("template", t).map_err(DbError::Name)?.to_owned()),
        None => None,
    };
    Ok(create::Make {
        encoding: word("--encoding", &args.encoding)?,
        locale: word("--locale", &args.locale)?,
        template,
    })
}

/// The options of `pg add-db`: `create` for an owner that exists.
pub fn pg_add_db(settings: &Settings, args: &AddDbArgs) -> Result<create::Options, DbError> {
    let rule = name_rule(settings)?;
    let (database, owner) = pg_names(&rule, &args.database, &args.owner)?;
    Ok(create::Options {
        target: pg_target(settings)?,
        database,
        owner,
        password: None,
        make: make(&rule, &args.make)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The options of `pg password`.
pub fn pg_password(settings: &Settings, args: &PasswordArgs) -> Result<password::Options, DbError> {
    let user = name_rule(settings)?
        .check("user", &args.user)
        .map_err(DbError::Name)?
        .to_owned();
    Ok(password::Options {
        target: pg_target(settings)?,
        user,
        password: crate::password::read(&args.password_file)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The options of `pg drop`: PostgreSQL's own databases refused before
/// any connection.
pub fn pg_drop(settings: &Settings, args: &DropArgs) -> Result<drop::Options, DbError> {
    let database = name_rule(settings)?
        .check("database", &args.database)
        .map_err(DbError::Name)?
        .to_owned();
    if ["postgres", "template0", "template1"].contains(&database.as_str()) {
        return Err(DbError::Name(format!(
            "database \"{database}\": PostgreSQL's own, never dropped"
        )));
    }
    Ok(drop::Options {
        target: pg_target(settings)?,
        database,
        force: args.force,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The MariaDB server: its socket.
pub fn mysql_target(settings: &Settings) -> Result<mysql::connect::Target, DbError> {
    Ok(mysql::connect::Target {
        socket: settings.path("db_mysql_socket", None)?,
        timeout: settings.timeout("db_connect_timeout", None)?,
    })
}

/// How MariaDB accounts are made (`db_mysql_auth`).
pub fn mysql_auth(settings: &Settings) -> Result<Auth, DbError> {
    Ok(settings.with("db_mysql_auth", None, Auth::parse)?)
}

/// The options of `mysql setup`.
pub fn mysql_setup(
    settings: &Settings,
    args: &SetupArgs,
) -> Result<mysql::setup::Options, DbError> {
    Ok(mysql::setup::Options {
        target: mysql_target(settings)?,
        auth: mysql_auth(settings)?,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The options of `pg vacuum`: at least one database at a time.
pub fn pg_vacuum(settings: &Settings, args: &VacuumArgs) -> Result<vacuum::Options, DbError> {
    if args.jobs == 0 {
        return Err(pysk_common::Error::option("--jobs", "\"0\": at least 1").into());
    }
    let rule = name_rule(settings)?;
    let databases = args
        .databases
        .iter()
        .map(|db| rule.check("database", db).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DbError::Name)?;
    Ok(vacuum::Options {
        target: pg_target(settings)?,
        databases,
        analyze: args.analyze,
        reindex: args.reindex,
        jobs: args.jobs,
        lock_timeout: settings.timeout("db_lock_timeout", args.lock_timeout.as_deref())?,
        lock: maintenance_lock_path(settings, "pg-vacuum")?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The options of `mysql create`: the names (no system database or
/// account), hosts, character set and collation checked before any
/// connection, the password read from its file (refused when others may
/// read it).
pub fn mysql_create(
    settings: &Settings,
    args: &MysqlCreateArgs,
) -> Result<mysql::create::Options, DbError> {
    let rule = name_rule(settings)?;
    let database = rule
        .check("database", &args.database)
        .map_err(DbError::Name)?;
    let database = mysql::not_a_system_database(database)?;
    let user = rule
        .check("user", args.user.as_deref().unwrap_or(database))
        .map_err(DbError::Name)?;
    let user = mysql::not_a_system_account(user)?;
    let charset = |option: &str, value: &str| {
        mysql::create::check_charset(value)
            .map(str::to_owned)
            .map_err(|why| DbError::from(pysk_common::Error::option(option, why)))
    };
    let password = crate::password::from_options(
        args.password_file.as_deref(),
        args.generate_password.as_deref(),
    )?;
    Ok(mysql::create::Options {
        target: mysql_target(settings)?,
        auth: mysql_auth(settings)?,
        database: database.to_owned(),
        user: user.to_owned(),
        hosts: mysql_hosts(&args.hosts)?,
        password,
        charset: charset("--charset", &args.charset)?,
        collation: match &args.collation {
            Some(c) => Some(charset("--collation", c)?),
            None => None,
        },
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// `--account-host`'s values, each checked (a bad one is an option error)
/// and each once.
fn mysql_hosts(hosts: &[String]) -> Result<Vec<String>, DbError> {
    let mut checked: Vec<String> = Vec::new();
    for host in hosts {
        let host = mysql::create::check_host(host)
            .map_err(|why| pysk_common::Error::option("--account-host", why))?;
        if !checked.iter().any(|h| h == host) {
            checked.push(host.to_owned());
        }
    }
    Ok(checked)
}

/// The options of `mysql password`: the name (no system account) and
/// hosts checked before any connection, the password read from its file.
pub fn mysql_password(
    settings: &Settings,
    args: &crate::cli::MysqlPasswordArgs,
) -> Result<mysql::password::Options, DbError> {
    let user = name_rule(settings)?
        .check("user", &args.user)
        .map_err(DbError::Name)?;
    let user = mysql::not_a_system_account(user)?;
    let hosts = mysql_hosts(&args.hosts)?;
    let password = crate::password::read(&args.password_file)?;
    Ok(mysql::password::Options {
        target: mysql_target(settings)?,
        auth: mysql_auth(settings)?,
        user: user.to_owned(),
        hosts,
        password,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The options of `mysql drop`: the names (no system database or
/// account) checked before any connection.
pub fn mysql_drop(
    settings: &Settings,
    args: &crate::cli::MysqlDropArgs,
) -> Result<mysql::drop::Options, DbError> {
    let rule = name_rule(settings)?;
    let database = rule
        .check("database", &args.database)
        .map_err(DbError::Name)?;
    let database = mysql::not_a_system_database(database)?;
    let user = rule
        .check("user", args.user.as_deref().unwrap_or(database))
        .map_err(DbError::Name)?;
    let user = mysql::not_a_system_account(user)?;
    Ok(mysql::drop::Options {
        target: mysql_target(settings)?,
        database: database.to_owned(),
        user: user.to_owned(),
        force: args.force,
        lock: lock_path(settings)?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The options of `mysql check`.
pub fn mysql_check(
    settings: &Settings,
    args: &crate::cli::MysqlCheckArgs,
) -> Result<mysql::check::Options, DbError> {
    use mysql::check::How;
    let how = if args.optimize {
        How::Optimize
    } else if args.repair {
        How::Repair
    } else if args.analyze {
        How::Analyze
    } else {
        How::Check
    };
    Ok(mysql::check::Options {
        target: mysql_target(settings)?,
        how,
        lock: maintenance_lock_path(settings, "mysql-check")?,
        wait: args.wait.resolve(settings, "db_wait")?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
    })
}

/// The lock file of mutating runs, in `db_state_dir`.
fn lock_path(settings: &Settings) -> Result<std::path::PathBuf, DbError> {
    Ok(settings.path("db_state_dir", None)?.join("pysk-db.lock"))
}

/// The lock file of a maintenance run (`pg-vacuum`, `mysql-check`): one
/// of each at a time, but never in the way of the subcommands that make,
/// change and drop, which a night's hours of vacuum would otherwise make
/// fail with 75.
fn maintenance_lock_path(settings: &Settings, kind: &str) -> Result<std::path::PathBuf, DbError> {
    Ok(settings
        .path("db_state_dir", None)?
        .join(format!("pysk-db-{kind}.lock")))
}

/// The options of `list`.
pub fn list(settings: &Settings, args: &ListArgs) -> Result<crate::list::Options, DbError> {
    Ok(crate::list::Options {
        pg: pg_server(settings)?,
        mysql: mysql_target(settings)?,
        json: args.json.json,
    })
}

/// The name rule of `db_name_pattern`, its errors named where the value
/// came from.
pub fn name_rule(settings: &Settings) -> Result<Rule, DbError> {
    Ok(settings.with("db_name_pattern", None, Rule::new)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use clap::Parser;

    use crate::cli::Cli;

    fn settings(text: &str) -> (tempfile::TempDir, Result<Settings, DbError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("serverconfig/default");
        fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        fs::write(&file, text).expect("write");
        let path = dir.path().to_str().expect("utf-8").to_owned();
        let cli = Cli::try_parse_from([
            "pysk-db",
            "--host",
            "h.example",
            "--config-dir",
            &path,
            "config",
        ])
        .expect("parses");
        let report = cli.common.reporter(crate::cli::NAME);
        let settings = cli
            .common
            .settings(SWITCHES, &report)
            .map_err(DbError::from);
        (dir, settings)
    }

    #[test]
    fn the_name_rule_comes_from_the_default_or_a_switch_named_where_it_is_bad() {
        let (_dir, s) = settings("");
        let rule = name_rule(&s.expect("settings")).expect("the default rule");
        assert!(rule.check("database", "shop").is_ok());
        let (dir, s) = settings("db_name_pattern=\"(\"\n");
        let err = name_rule(&s.expect("settings")).expect_err("a bad pattern");
        let file = dir.path().join("serverconfig/default");
        assert!(
            err.to_string().starts_with(&format!(
                "{}:1: db_name_pattern: \"(\": not a regular expression",
                file.display()
            )),
            "{err}"
        );
    }
}
