//! `mysql drop DB [--user U] [--force]`: the database and the account
//! `create` made for it (`U`, default the database's name) at every host
//! it has; what is not there is not dropped, so a second run finds nothing
//! to change. An account that also holds grants elsewhere (another
//! database, every database, a role) still serves something else: it is
//! kept and said. Sessions on the database or of the accounts dropped
//! refuse the drop unless `--force`, which ends them first (`KILL
//! CONNECTION`).

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
use crate::names::mysql_identifier;
use crate::plan::{self, Action, Step};

/// The server's code for a session that is gone (`KILL` of an ended one).
const NO_SUCH_THREAD: u16 = 1094;

/// What `mysql drop` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// The database (checked by the name rule; not a system database).
    pub database: String,
    /// The account's user name (checked by the name rule; not a system
    /// account).
    pub user: String,
    /// End the sessions on the database and of the accounts dropped first.
    pub force: bool,
    /// The lock file of mutating runs.
    pub lock: std::path::PathBuf,
    /// How long to wait for it.
    pub wait: Duration,
    /// Show the plan; change nothing.
    pub dry_run: bool,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// An account kept because it holds grants elsewhere.
#[derive(Debug, Clone, Serialize)]
struct Kept {
    /// `user@host`.
    account: String,
    /// What else it holds grants on: databases, `*.*`, `the role R`.
    grants_elsewhere: Vec<String>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dry_run: bool,
    database: &'a str,
    user: &'a str,
    changes: &'a [Step],
    kept: &'a [Kept],
}

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let mut conn = connect::connect(&options.target)?;
    let (steps, kept) = plan(&mut conn, options)?;
    for k in &kept {
        report.warn(format_args!(
            "kept the account {}: it also holds grants on {}",
            k.account,
            k.grants_elsewhere.join(", ")
        ));
    }
    if options.dry_run {
        if !options.json {
            plan::show(&steps, out)?;
        }
    } else {
        apply(&mut conn, options, &steps, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            database: &options.database,
            user: &options.user,
            changes: &steps,
            kept: &kept,
        })?;
    } else if steps.is_empty() && kept.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: there is no database {} nor account {}",
            options.database, options.user
        ));
    }
    Ok(Outcome::Success)
}

/// Runs the steps in order; a session that ended by itself since it was
/// planned counts as ended.
fn apply(
    conn: &mut Conn,
    options: &Options,
    steps: &[Step],
    report: &Reporter,
) -> Result<(), DbError> {
    for step in steps {
        match conn.query_drop(step.statement()) {
            Err(mysql::Error::MySqlError(e))
                if step.action == Action::End && e.code == NO_SUCH_THREAD => {}
            Err(e) => return Err(options.target.refused(Some(&step.sql), &e)),
            Ok(()) => {}
        }
        step.said(options.json, report);
    }
    Ok(())
}

/// The statements — the sessions ended, the database (when there), each
/// account of the user (roles are not accounts and stay) that holds no
/// grant elsewhere — and the accounts kept.
fn plan(conn: &mut Conn, options: &Options) -> Result<(Vec<Step>, Vec<Kept>), DbError> {
    let refused = |e: mysql::Error| options.target.refused(None, &e);
    let (db, user) = (&options.database, &options.user);
    let exists = database_exists(conn, options)?;
    let mut drops: Vec<Step> = Vec::new();
    if exists {
        let sql = format!("DROP DATABASE {}", mysql_identifier(db));
        drops.push(Step::plain(
            Action::Drop,
            None,
            format!("the database {db}"),
            sql,
        ));
    }
    let hosts: Vec<String> = conn
        .exec(
            "SELECT Host FROM mysql.user WHERE User = ? AND is_role = 'N' ORDER BY Host",
            (user.as_str(),),
        )
        .map_err(refused)?;
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for host in hosts {
        let account = format!("{user}@{host}");
        let grants_elsewhere = elsewhere(conn, options, &host)?;
        if !grants_elsewhere.is_empty() {
            drops.extend(revoke(conn, options, &host)?);
            kept.push(Kept {
                account,
                grants_elsewhere,
            });
            continue;
        }
        let sql = format!(
            "DROP USER {}@{}",
            mysql_identifier(user),
            mysql_identifier(&host)
        );
        drops.push(Step::plain(
            Action::Drop,
            None,
            format!("the account {account}"),
            sql,
        ));
        dropped.push(host);
    }
    let whose = Whose {
        database: exists,
        every: kept.is_empty(),
        hosts: dropped,
    };
    let mut steps = sessions(conn, options, &whose)?;
    steps.extend(drops);
    Ok((steps, kept))
}

/// Whether the database is there.
fn database_exists(conn: &mut Conn, options: &Options) -> Result<bool, DbError> {
    let found: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (options.database.as_str(),),
        )
        .map_err(|e| options.target.refused(None, &e))?;
    Ok(found.is_some())
}

/// A kept account's grants on the database taken back, in every form
/// the server keeps after `DROP DATABASE` and that would give the account
/// a database made later under the same name: `mysql.db`'s rows for the
/// name escaped (as `create` grants it) and raw (a pattern by hand, which
/// matches more), and its table, column and routine grants; each with
/// its GRANT OPTION, which ALL does not cover.
fn revoke(conn: &mut Conn, options: &Options, host: &str) -> Result<Vec<Step>, DbError> {
    let refused = |e: mysql::Error| options.target.refused(None, &e);
    let (user, db) = (options.user.as_str(), options.database.as_str());
    let pattern = grant_pattern(db);
    let from = format!("{}@{}", mysql_identifier(user), mysql_identifier(host));
    let key = (user, host, pattern.as_str(), db);
    let rows: Vec<(String, String, String)> = conn
        .exec(
            "SELECT Db, '', Grant_priv FROM mysql.db \
             WHERE User = ? AND Host = ? AND Db IN (?, ?) ORDER BY Db",
            key,
        )
        .map_err(refused)?;
    let mut steps = Vec::new();
    for (on, _, grant) in rows {
        let what = if on == pattern {
            db.to_owned()
        } else {
            format!("{on} (a pattern)")
        };
        let at = format!("{}.*", mysql_identifier(&on));
        steps.extend(revoke_at(&at, &what, &from, grant == "Y", options, host));
    }
    let objects: Vec<(String, String, String, String)> = conn
        .exec(
            "SELECT Db, '', Table_name, IF(FIND_IN_SET('Grant', Table_priv), 'Y', 'N') \
             FROM mysql.tables_priv WHERE User = ? AND Host = ? AND Db IN (?, ?) UNION ALL \
             SELECT Db, CONCAT(Routine_type, ' '), Routine_name, \
             IF(FIND_IN_SET('Grant', Proc_priv), 'Y', 'N') \
             FROM mysql.procs_priv WHERE User = ? AND Host = ? AND Db IN (?, ?) \
             ORDER BY 1, 2, 3",
            [key.0, key.1, key.2, key.3].repeat(2),
        )
        .map_err(refused)?;
    // A column grant has its table's row in tables_priv, and REVOKE ALL
    // on the table takes the columns' privileges too.
    for (on, kind, name, grant) in objects {
        let at = format!(
            "{kind}{}.{}",
            mysql_identifier(&on),
            mysql_identifier(&name)
        );
        let what = format!("{}{db}.{name}", kind.to_lowercase());
        steps.extend(revoke_at(&at, &what, &from, grant == "Y", options, host));
    }
    Ok(steps)
}

/// `REVOKE ALL PRIVILEGES ON at FROM from`, and `REVOKE GRANT OPTION` too
/// when the grant carries it; `what` names `at` in words.
fn revoke_at(
    at: &str,
    what: &str,
    from: &str,
    grant_option: bool,
    options: &Options,
    host: &str,
) -> Vec<Step> {
    let account = format!("{}@{host}", options.user);
    let mut steps = vec![Step::plain(
        Action::Revoke,
        None,
        format!("ALL on {what} from {account}"),
        format!("REVOKE ALL PRIVILEGES ON {at} FROM {from}"),
    )];
    if grant_option {
        steps.push(Step::plain(
            Action::Revoke,
            None,
            format!("GRANT OPTION on {what} from {account}"),
            format!("REVOKE GRANT OPTION ON {at} FROM {from}"),
        ));
    }
    steps
}

/// What `user@host` holds grants on besides the database: other
/// databases (or their tables, columns, routines), every database
/// (`*.*`: a global privilege beyond USAGE), roles.
fn elsewhere(conn: &mut Conn, options: &Options, host: &str) -> Result<Vec<String>, DbError> {
    let refused = |e: mysql::Error| options.target.refused(None, &e);
    let (user, db) = (options.user.as_str(), options.database.as_str());
    let pattern = grant_pattern(db);
    let per_table = ["db", "tables_priv", "columns_priv", "procs_priv"]
        .map(|t| {
            format!("SELECT Db FROM mysql.{t} WHERE User = ? AND Host = ? AND Db NOT IN (?, ?)")
        })
        .join(" UNION ");
    let params: Vec<&str> = [user, host, pattern.as_str(), db].repeat(4);
    let mut found: Vec<String> = conn
        .exec::<String, _, _>(format!("{per_table} ORDER BY 1"), params)
        .map_err(refused)?
        .into_iter()
        .map(|d| d.replace("\\_", "_").replace("\\%", "%"))
        .collect();
    found.dedup();
    let row: Option<mysql::Row> = conn
        .exec_first(
            "SELECT * FROM mysql.user WHERE User = ? AND Host = ?",
            (user, host),
        )
        .map_err(refused)?;
    if let Some(row) = row {
        let global = row.columns_ref().iter().enumerate().any(|(i, column)| {
            column.name_str().ends_with("_priv") && row.get::<String, _>(i).as_deref() == Some("Y")
        });
        if global {
            found.push("*.*".to_owned());
        }
    }
    let roles: Vec<String> = conn
        .exec(
            "SELECT Role FROM mysql.roles_mapping WHERE User = ? AND Host = ? ORDER BY 1",
            (user, host),
        )
        .map_err(refused)?;
    found.extend(roles.into_iter().map(|r| format!("the role {r}")));
    Ok(found)
}

/// Whose sessions a drop ends: those on the database (when it is
/// dropped), and those of the accounts dropped.
struct Whose {
    /// The database is dropped.
    database: bool,
    /// Every account of the user is dropped (none kept).
    every: bool,
    /// The hosts of the accounts dropped.
    hosts: Vec<String>,
}

impl Whose {
    /// Whose sessions these are, for the refusal.
    fn said(&self, options: &Options) -> String {
        let (db, user) = (&options.database, &options.user);
        let accounts = match self.hosts.as_slice() {
            [] => None,
            _ if self.every => Some(format!("the user {user}")),
            [host] => Some(format!("the account {user}@{host}")),
            hosts => Some(format!(
                "the accounts {}",
                hosts
                    .iter()
                    .map(|h| format!("{user}@{h}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        match (self.database, accounts) {
            (true, Some(accounts)) => format!("the database {db} and {accounts} have"),
            (true, None) => format!("the database {db} has"),
            (false, Some(accounts)) if accounts.starts_with("the accounts ") => {
                format!("{accounts} have")
            }
            (false, Some(accounts)) => format!("{accounts} has"),
            (false, None) => String::new(),
        }
    }
}

/// The client host of a process list row (`localhost` for a socket,
/// else the address or name without its `:port`).
const CLIENT_HOST: &str = "IF(LOCATE(':', HOST) > 0, LEFT(HOST, CHAR_LENGTH(HOST) - \
     CHAR_LENGTH(SUBSTRING_INDEX(HOST, ':', -1)) - 1), HOST)";

/// The sessions on the database (when it is dropped) and of the accounts
/// dropped, our own aside: refused without `--force`, else each ended
/// first. The process list names a session's user, not the account it
/// signed in as: when every account of the user goes, each session of
/// the user counts; when one is kept, only a session whose client host
/// matches a dropped account's host (its pattern, as the server matches
/// it) does, so the kept account's sessions go on.
fn sessions(conn: &mut Conn, options: &Options, whose: &Whose) -> Result<Vec<Step>, DbError> {
    let (db, user) = (&options.database, &options.user);
    let mut of_user = "FALSE".to_owned();
    let mut params: Vec<mysql::Value> = vec![whose.database.into(), db.as_str().into()];
    if !whose.hosts.is_empty() {
        params.push(user.as_str().into());
        params.push(whose.every.into());
        let hosts = vec![format!("{CLIENT_HOST} LIKE ?"); whose.hosts.len()].join(" OR ");
        of_user = format!("USER = ? AND (? OR {hosts})");
        params.extend(whose.hosts.iter().map(|h| h.as_str().into()));
    }
    let found: Vec<(u64, String, Option<String>)> = conn
        .exec(
            format!(
                "SELECT ID, USER, DB FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND ((? AND DB = ?) OR ({of_user})) ORDER BY ID"
            ),
            params,
        )
        .map_err(|e| options.target.refused(None, &e))?;
    if !found.is_empty() && !options.force {
        return Err(DbError::Conflict(format!(
            "{} {} session(s): --force ends them",
            whose.said(options),
            found.len()
        )));
    }
    Ok(found
        .into_iter()
        .map(|(id, who, on)| {
            let on = on.map(|d| format!(" on {d}")).unwrap_or_default();
            let what = format!("the session {id} of {who}{on}");
            Step::plain(Action::End, None, what, format!("KILL CONNECTION {id}"))
        })
        .collect())
}
