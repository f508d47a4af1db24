//! `mysql setup`: the insecure defaults of a hand-run `mariadb-install-db`
//! removed — the anonymous accounts (`''@localhost`, `''@<hostname>`),
//! root at any host but `localhost`, the `test` database and what the
//! `PUBLIC` role may do on `test` and `test\_%` (MariaDB 10.11 grants it
//! there, not to the anonymous accounts) — while root stays reachable by
//! `unix_socket`; `auth_ed25519` installed when accounts are made with it.
//! Planned first from the catalogs, then shown (`--dry-run`) or applied; a
//! second run finds nothing to change and says so.

use std::io::Write;
use std::time::Duration;

use mysql::Conn;
use mysql::prelude::Queryable;
use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::mysql::connect::{self, Target};
use crate::mysql::hash::Auth;
use crate::names::mysql_identifier;
use crate::plan::{self, Action, Step};

/// What `mysql setup` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// How accounts are made (`db_mysql_auth`): `ed25519` needs its plugin.
    pub auth: Auth,
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
    changes: &'a [Step],
    unchanged: usize,
}

/// The `test\_%` pattern of `mysql.db`: every database named `test_…`.
const TEST_PATTERN: &str = "test\\_%";

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let mut conn = connect::connect(&options.target)?;
    let (steps, unchanged) = plan(&mut conn, options, report)?;
    if options.dry_run {
        if !options.json {
            plan::show(&steps, out)?;
        }
    } else {
        connect::apply(&mut conn, &options.target, &steps, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            changes: &steps,
            unchanged,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: no anonymous account, remote root or test database"
        ));
    }
    Ok(Outcome::Success)
}

/// The statement that installs the `ed25519` plugin.
pub const INSTALL_ED25519: &str = "INSTALL SONAME 'auth_ed25519'";

/// Whether the `ed25519` authentication plugin is installed and active.
pub fn ed25519_active(conn: &mut Conn, target: &Target) -> Result<bool, DbError> {
    let status: Option<String> = conn
        .query_first(
            "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'",
        )
        .map_err(|e| target.refused(None, &e))?;
    Ok(status.as_deref() == Some("ACTIVE"))
}

/// An account as statements name it.
fn account(user: &str, host: &str) -> String {
    format!("{}@{}", mysql_identifier(user), mysql_identifier(host))
}

/// The changes the catalogs call for, and how many checks found nothing
/// to change.
fn plan(
    conn: &mut Conn,
    options: &Options,
    report: &Reporter,
) -> Result<(Vec<Step>, usize), DbError> {
    let target = &options.target;
    root_session(conn, target)?;
    let mut found = Vec::new();
    if options.auth == Auth::Ed25519 {
        found.push(ed25519(conn, target)?);
    }
    found.extend([
        root_by_socket(conn, target)?,
        accounts(conn, target, "User = ''", "anonymous")?,
        accounts(
            conn,
            target,
            "User = 'root' AND Host <> 'localhost'",
            "remote root",
        )?,
        public_grants(conn, target, "test")?,
        public_grants(conn, target, TEST_PATTERN)?,
        test_database(conn, target, report)?,
    ]);
    let unchanged = found.iter().filter(|steps| steps.is_empty()).count();
    Ok((found.concat(), unchanged))
}

/// Installs the `ed25519` plugin when it is not active.
fn ed25519(conn: &mut Conn, target: &Target) -> Result<Vec<Step>, DbError> {
    if ed25519_active(conn, target)? {
        return Ok(Vec::new());
    }
    Ok(vec![Step::plain(
        Action::Install,
        None,
        "the ed25519 authentication plugin".to_owned(),
        INSTALL_ED25519.to_owned(),
    )])
}

/// Refuses a session that is not `root@localhost`: the remote roots are
/// dropped, and the account kept must be the one this session is.
fn root_session(conn: &mut Conn, target: &Target) -> Result<(), DbError> {
    let me: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .map_err(|e| target.refused(None, &e))?;
    if me.as_deref() == Some("root@localhost") {
        return Ok(());
    }
    Err(DbError::Conflict(format!(
        "{}: connected as {}, not root@localhost",
        target.name(),
        me.unwrap_or_default().escape_debug()
    )))
}

/// Root reached without `unix_socket` (an empty password) gets Debian's
/// stock authentication back.
fn root_by_socket(conn: &mut Conn, target: &Target) -> Result<Vec<Step>, DbError> {
    let root: Option<String> = conn
        .query_first("SHOW CREATE USER `root`@`localhost`")
        .map_err(|e| target.refused(None, &e))?;
    if root.is_some_and(|text| text.contains("unix_socket")) {
        return Ok(Vec::new());
    }
    Ok(vec![Step::plain(
        Action::Set,
        None,
        "root@localhost to unix_socket authentication".to_owned(),
        "ALTER USER `root`@`localhost` IDENTIFIED VIA mysql_native_password \
         USING 'invalid' OR unix_socket"
            .to_owned(),
    )])
}

/// Drops the accounts matching `condition`, called `kind` accounts.
fn accounts(
    conn: &mut Conn,
    target: &Target,
    condition: &str,
    kind: &str,
) -> Result<Vec<Step>, DbError> {
    let found: Vec<(String, String)> = conn
        .query(format!(
            "SELECT User, Host FROM mysql.user WHERE is_role = 'N' AND {condition} \
             ORDER BY User, Host"
        ))
        .map_err(|e| target.refused(None, &e))?;
    Ok(found
        .into_iter()
        .map(|(user, host)| {
            let what = format!(
                "the {kind} account '{}'@'{}'",
                user.escape_debug(),
                host.escape_debug()
            );
            let sql = format!("DROP USER {}", account(&user, &host));
            Step::plain(Action::Drop, None, what, sql)
        })
        .collect())
}

/// Takes back what the `PUBLIC` role may do on the databases `db` names.
fn public_grants(conn: &mut Conn, target: &Target, db: &str) -> Result<Vec<Step>, DbError> {
    let rows: Vec<String> = conn
        .exec(
            "SELECT Db FROM mysql.db WHERE User = 'PUBLIC' AND Host = '' AND Db = ?",
            (db,),
        )
        .map_err(|e| target.refused(None, &e))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Step::plain(
        Action::Revoke,
        None,
        format!("PUBLIC's privileges on {db}"),
        format!(
            "REVOKE ALL PRIVILEGES ON {}.* FROM PUBLIC",
            mysql_identifier(db)
        ),
    )])
}

/// Drops the `test` database while it is empty: tables in it are
/// someone's data, kept and named.
fn test_database(
    conn: &mut Conn,
    target: &Target,
    report: &Reporter,
) -> Result<Vec<Step>, DbError> {
    let test: Option<(u64, u64)> = conn
        .query_first(
            "SELECT COUNT(*), (SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'test') FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME = 'test'",
        )
        .map_err(|e| target.refused(None, &e))?;
    match test {
        Some((1, 0)) => Ok(vec![Step::plain(
            Action::Drop,
            None,
            "the database test".to_owned(),
            "DROP DATABASE `test`".to_owned(),
        )]),
        Some((1, tables)) => {
            report.warn(format_args!(
                "kept the database test: it holds {tables} table(s); drop it by hand"
            ));
            Ok(Vec::new())
        }
        _ => Ok(Vec::new()),
    }
}
