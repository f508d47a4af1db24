//! `mysql create DB --user U --host H...`: the account(s) `U@H`, the
//! database, ALL on it to each account. The password reaches the server
//! only as the hash of `db_mysql_auth` made here, written into the
//! statement as a checked literal (the server takes no placeholder there);
//! a stored hash of the same password is left alone (both hashes are
//! deterministic), so a second run changes nothing. Planned from the
//! catalogs, then shown (`--dry-run`, the hash as `***`) or applied; what
//! the run made is dropped again when a later statement is refused.

use std::io::Write;
use std::time::Duration;

use mysql::Conn;
use mysql::prelude::Queryable;
use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::mysql::connect::{self, Target};
use crate::mysql::grant_pattern;
use crate::mysql::hash::Auth;
use crate::mysql::password;
use crate::mysql::setup::{INSTALL_ED25519, ed25519_active};
use crate::names::mysql_identifier;
use crate::password::Password;
use crate::plan::{self, Action, Step};

/// The server's code for a collation it does not have.
const UNKNOWN_COLLATION: u16 = 1273;

/// The server's code for a collation of another character set.
const COLLATION_CHARSET_MISMATCH: u16 = 1253;

/// What `mysql create` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// How the accounts are made.
    pub auth: Auth,
    /// The database (checked by the name rule; not a system database).
    pub database: String,
    /// The account's user name (checked by the name rule; not a system
    /// account).
    pub user: String,
    /// The hosts it may come from (checked by [`check_host`]).
    pub hosts: Vec<String>,
    /// The account's password.
    pub password: Password,
    /// The database's character set (checked by [`check_charset`]).
    pub charset: String,
    /// Its collation, when not the character set's default.
    pub collation: Option<String>,
    /// The lock file of mutating runs.
    pub lock: std::path::PathBuf,
    /// How long to wait for it.
    pub wait: Duration,
    /// Show the plan; change nothing.
    pub dry_run: bool,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dry_run: bool,
    database: &'a str,
    user: &'a str,
    hosts: &'a [String],
    changes: &'a [Step],
    warnings: &'a [String],
}

/// The steps of a plan and, for each, the step that takes it back (the
/// accounts and the database this run makes), run when a later one fails.
#[derive(Debug, Default)]
struct Plan {
    /// The statements, in order.
    steps: Vec<Step>,
    /// `undo[i]` takes `steps[i]` back.
    undo: Vec<Option<Step>>,
}

impl Plan {
    /// Adds a step and what takes it back.
    fn push(&mut self, step: Step, undo: Option<Step>) {
        self.steps.push(step);
        self.undo.push(undo);
    }
}

/// What planning found worth saying besides the steps.
#[derive(Debug, Default)]
struct Notes {
    /// A database that exists other than asked (left as it is): stderr
    /// always, and the `--json` document.
    warnings: Vec<String>,
    /// Accounts open to many hosts: stderr unless `-q`.
    infos: Vec<String>,
}

/// `host` when it is a host an account may name: letters, digits and
/// `.-_%:/` (names, addresses, wildcards, netmasks), at most 255 bytes;
/// else why not, for `--account-host`'s error.
pub fn check_host(host: &str) -> Result<&str, String> {
    let fine = |b: u8| b.is_ascii_alphanumeric() || b".-_%:/".contains(&b);
    if !host.is_empty() && host.len() <= 255 && host.bytes().all(fine) {
        return Ok(host);
    }
    Err(format!(
        "{host:?}: not a host this tool takes (letters, digits and .-_%:/)"
    ))
}

/// `name` when it is a character set or collation name: lower-case
/// letters, digits and `_`, at most 64 bytes; else why not, for the
/// option's error.
pub fn check_charset(name: &str) -> Result<&str, String> {
    let fine = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(fine) {
        return Ok(name);
    }
    Err(format!(
        "{name:?}: not a name this tool takes (a-z, 0-9 and _)"
    ))
}

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let mut conn = connect::connect(&options.target)?;
    let mut notes = Notes::default();
    let planned = plan(&mut conn, options, &mut notes)?;
    let steps = &planned.steps;
    for warning in &notes.warnings {
        report.warn(warning);
    }
    for info in &notes.infos {
        report.info(info);
    }
    if options.dry_run {
        if !options.json {
            plan::show(steps, out)?;
        }
    } else {
        options.password.keep()?;
        let (target, undo) = (&options.target, &planned.undo);
        connect::undoable(&mut conn, target, steps, undo, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            database: &options.database,
            user: &options.user,
            hosts: &options.hosts,
            changes: steps,
            warnings: &notes.warnings,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: {} exists, with ALL to {} at {}",
            options.database,
            options.user,
            options.hosts.join(", ")
        ));
    }
    Ok(Outcome::Success)
}

/// The statements the catalogs call for, in order: the plugin, the
/// accounts, the database, the grants; a character set or collation the
/// server does not have (together) refused first.
fn plan(conn: &mut Conn, options: &Options, notes: &mut Notes) -> Result<Plan, DbError> {
    let target = &options.target;
    charset_known(conn, options)?;
    let mut steps = Plan::default();
    if options.auth == Auth::Ed25519 && !ed25519_active(conn, target)? {
        let step = Step::plain(
            Action::Install,
            None,
            "the ed25519 authentication plugin".to_owned(),
            INSTALL_ED25519.to_owned(),
        );
        steps.push(step, None);
    }
    accounts(conn, options, &mut steps, notes)?;
    database(conn, options, &mut steps, notes)?;
    for host in &options.hosts {
        if !has_all(conn, options, host)? {
            let (db, user) = (&options.database, &options.user);
            let sql = format!(
                "GRANT ALL PRIVILEGES ON {}.* TO {}",
                mysql_identifier(&grant_pattern(db)),
                account(user, host)
            );
            let what = format!("ALL on {db} to {user}@{host}");
            steps.push(Step::plain(Action::Make, None, what, sql), None);
        }
    }
    Ok(steps)
}

/// `user@host` quoted.
fn account(user: &str, host: &str) -> String {
    format!("{}@{}", mysql_identifier(user), mysql_identifier(host))
}

/// Each account made, or its password set when its stored hash is not
/// one of this password; an account another way in (`unix_socket`, a
/// chain) is refused, and so is one that exists when the password is to
/// be generated (its applications use the one it has), or is read from
/// `--generate-password`'s existing file and is not the account's: only
/// the second run of the same provisioning passes.
fn accounts(
    conn: &mut Conn,
    options: &Options,
    steps: &mut Plan,
    notes: &mut Notes,
) -> Result<(), DbError> {
    let (user, auth) = (&options.user, options.auth);
    let stored = password::stored(conn, &options.target, user)?;
    let hash = password::hash(auth, &options.password.secret)?;
    for host in &options.hosts {
        let (action, verb, what) = match stored.iter().find(|s| &s.host == host) {
            None => {
                notes.infos.extend(open_to(user, host));
                (
                    Action::Make,
                    "CREATE USER",
                    format!("the account {user}@{host}"),
                )
            }
            Some(_) if options.password.generated.is_some() => {
                return Err(DbError::Conflict(format!(
                    "the account {user}@{host} exists, but not --generate-password's file: \
                     give its password with --password-file"
                )));
            }
            Some(account)
                if options.password.reused && !account.holds_password(&options.password.secret) =>
            {
                return Err(DbError::Conflict(format!(
                    "the account {user}@{host} exists with another password than \
                     --generate-password's file: give its password with --password-file"
                )));
            }
            Some(account) => {
                account.replaceable(user)?;
                if account.holds(auth, &hash) {
                    continue;
                }
                (Action::Set, "ALTER USER", account.set_what(user, auth))
            }
        };
        let quoted = account(user, host);
        let undo = (action == Action::Make).then(|| {
            let what = format!("the account {user}@{host}");
            Step::plain(Action::Drop, None, what, format!("DROP USER {quoted}"))
        });
        let step = Step::secret(
            action,
            None,
            what,
            format!("{verb} {quoted} {}", auth.clause("***")),
            format!("{verb} {quoted} {}", auth.clause(&hash)),
        );
        steps.push(step, undo);
    }
    Ok(())
}

/// The line saying that `user@host` is open to every host `host`
/// matches, when it has a wildcard (`%` any string, `_` any character).
fn open_to(user: &str, host: &str) -> Option<String> {
    if host == "%" {
        return Some(format!("the account {user}@% may log in from every host"));
    }
    host.contains(['%', '_']).then(|| {
        format!("the account {user}@{host} may log in from every host that matches {host}")
    })
}

/// Refuses (a bad option, exit 2) a character set the server does not
/// have, a collation it does not have, or one of another character set:
/// the server would refuse the CREATE DATABASE after the accounts were
/// made.
fn charset_known(conn: &mut Conn, options: &Options) -> Result<(), DbError> {
    let refused = |e: mysql::Error| options.target.refused(None, &e);
    let charset = options.charset.as_str();
    let known: Option<String> = conn
        .exec_first(
            "SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS \
             WHERE CHARACTER_SET_NAME = ?",
            (charset,),
        )
        .map_err(refused)?;
    if known.is_none() {
        return Err(bad(
            "--charset",
            charset,
            "not a character set this server knows",
        ));
    }
    let Some(collation) = options.collation.as_deref() else {
        return Ok(());
    };
    // The server itself judges the pair (it knows collations no catalog
    // of every version lists, as 10.10's utf8mb4_uca1400_ai_ci); both
    // names passed check_charset, so they are bare words.
    let probe = format!("SELECT CONVERT('' USING {charset}) COLLATE {collation}");
    match conn.query_drop(probe) {
        Ok(()) => Ok(()),
        Err(mysql::Error::MySqlError(e)) if e.code == UNKNOWN_COLLATION => Err(bad(
            "--collation",
            collation,
            "not a collation this server knows",
        )),
        Err(mysql::Error::MySqlError(e)) if e.code == COLLATION_CHARSET_MISMATCH => Err(bad(
            "--collation",
            collation,
            &format!("not a collation of the character set {charset}"),
        )),
        Err(e) => Err(refused(e)),
    }
}

/// A bad option value the server found (exit 2).
fn bad(option: &str, value: &str, why: &str) -> DbError {
    pysk_common::Error::option(option, format!("{value:?}: {why}")).into()
}

/// The database made when it is not there; one that is there and that
/// other accounts hold grants on (root and PUBLIC aside) is someone
/// else's, and refused; one of another character set or collation than
/// asked is left as it is, and said.
fn database(
    conn: &mut Conn,
    options: &Options,
    steps: &mut Plan,
    notes: &mut Notes,
) -> Result<(), DbError> {
    let db = &options.database;
    let exists: Option<(String, String)> = conn
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db.as_str(),),
        )
        .map_err(|e| options.target.refused(None, &e))?;
    if let Some((charset, collation)) = exists {
        notes
            .warnings
            .extend(differs(options, &charset, &collation));
        return not_others(conn, options);
    }
    let mut sql = format!(
        "CREATE DATABASE {} CHARACTER SET {}",
        mysql_identifier(db),
        options.charset
    );
    if let Some(collation) = &options.collation {
        sql.push_str(&format!(" COLLATE {collation}"));
    }
    let what = format!("the database {db}");
    let drop = format!("DROP DATABASE {}", mysql_identifier(db));
    let undo = Step::plain(Action::Drop, None, what.clone(), drop);
    steps.push(Step::plain(Action::Make, None, what, sql), Some(undo));
    Ok(())
}

/// Refuses a database that other accounts hold grants on (root and
/// PUBLIC aside): it is someone else's.
fn not_others(conn: &mut Conn, options: &Options) -> Result<(), DbError> {
    let (db, user) = (&options.database, &options.user);
    let others: Vec<(String, String)> = conn
        .exec(
            "SELECT DISTINCT User, Host FROM mysql.db WHERE Db IN (?, ?) \
             AND User NOT IN ('root', 'PUBLIC', ?) ORDER BY 1, 2",
            (grant_pattern(db), db.as_str(), user.as_str()),
        )
        .map_err(|e| options.target.refused(None, &e))?;
    if others.is_empty() {
        return Ok(());
    }
    let others: Vec<String> = others.iter().map(|(u, h)| format!("{u}@{h}")).collect();
    Err(DbError::Conflict(format!(
        "the database {db} exists with grants to {}, not {user}'s alone",
        others.join(", ")
    )))
}

/// What an existing database has that differs from what was asked.
fn differs(options: &Options, charset: &str, collation: &str) -> Option<String> {
    let db = &options.database;
    let asked = if charset != options.charset {
        format!("the character set {}", options.charset)
    } else {
        match &options.collation {
            Some(asked) if asked != collation => format!("the collation {asked}"),
            _ => return None,
        }
    };
    Some(format!(
        "the database {db} exists with the character set {charset} and the collation \
         {collation}, not {asked}: left as it is"
    ))
}

/// Whether `user@host` holds every privilege on the database (its row of
/// `mysql.db`, every `*_priv` column but `Grant_priv` `Y`), whether or not
/// it may also grant them.
fn has_all(conn: &mut Conn, options: &Options, host: &str) -> Result<bool, DbError> {
    let row: Option<mysql::Row> = conn
        .exec_first(
            "SELECT * FROM mysql.db WHERE Host = ? AND User = ? AND Db = ?",
            (
                host,
                options.user.as_str(),
                grant_pattern(&options.database),
            ),
        )
        .map_err(|e| options.target.refused(None, &e))?;
    let Some(row) = row else {
        return Ok(false);
    };
    let columns = row.columns_ref();
    Ok(columns.iter().enumerate().all(|(i, column)| {
        let name = column.name_str();
        !name.ends_with("_priv")
            || name == "Grant_priv"
            || row.get::<String, _>(i).as_deref() == Some("Y")
    }))
}
