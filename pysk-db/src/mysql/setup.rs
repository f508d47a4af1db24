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
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::mysql::connect::{self, Target};
use crate::mysql::hash::Auth;
use crate::names::mysql_identifier;

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

/// One change of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// What is done: `drop`, `revoke`, `set` or `install`.
    pub action: &'static str,
    /// To what, in words.
    pub what: String,
    /// The statement.
    pub sql: String,
}

impl Change {
    /// The action done, as the report says it.
    fn done(&self) -> &'static str {
        match self.action {
            "drop" => "dropped",
            "revoke" => "revoked",
            "install" => "installed",
            _ => "set",
        }
    }
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dry_run: bool,
    changes: &'a [Change],
    unchanged: usize,
}

/// The `test\_%` pattern of `mysql.db`: every database named `test_…`.
const TEST_PATTERN: &str = "test\\_%";

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = if options.dry_run {
        Lock::existing(&options.lock, options.wait)?
    } else {
        if let Some(dir) = options.lock.parent() {
            std::fs::create_dir_all(dir).map_err(pysk_common::error::write_err(dir))?;
        }
        Some(Lock::acquire(&options.lock, options.wait)?)
    };
    let mut conn = connect::connect(&options.target)?;
    let (changes, unchanged) = plan(&mut conn, options, report)?;
    if !options.dry_run {
        for change in &changes {
            conn.query_drop(&change.sql)
                .map_err(|e| options.target.refused(Some(&change.sql), &e))?;
            if !options.json {
                report.info(format_args!("{} {}", change.done(), change.what));
            }
        }
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            changes: &changes,
            unchanged,
        })?;
    } else if options.dry_run {
        let mut text = String::new();
        for change in &changes {
            text.push_str(&format!(
                "would {} {}: {};\n",
                change.action, change.what, change.sql
            ));
        }
        if changes.is_empty() {
            text.push_str("nothing to change\n");
        }
        out.write_all(text.as_bytes())
            .map_err(pysk_common::Error::Stdout)?;
    } else if changes.is_empty() {
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
) -> Result<(Vec<Change>, usize), DbError> {
    let target = &options.target;
    let refused = |e: mysql::Error| target.refused(None, &e);
    let mut changes = Vec::new();
    let mut unchanged = 0;
    let mut check = |found: Vec<Change>| {
        if found.is_empty() {
            unchanged += 1;
        }
        changes.extend(found);
    };

    // Root must be root@localhost: the remote ones are dropped below, and
    // an account this session is not must not be the one kept.
    let me: Option<String> = conn.query_first("SELECT CURRENT_USER()").map_err(refused)?;
    if me.as_deref() != Some("root@localhost") {
        return Err(DbError::Conflict(format!(
            "{}: connected as {}, not root@localhost",
            target.name(),
            me.unwrap_or_default().escape_debug()
        )));
    }

    if options.auth == Auth::Ed25519 {
        check(if ed25519_active(conn, target)? {
            Vec::new()
        } else {
            vec![Change {
                action: "install",
                what: "the ed25519 authentication plugin".to_owned(),
                sql: INSTALL_ED25519.to_owned(),
            }]
        });
    }

    // Root with no unix_socket was reached with an empty password: it gets
    // Debian's stock authentication back.
    let root: Option<String> = conn
        .query_first("SHOW CREATE USER `root`@`localhost`")
        .map_err(refused)?;
    check(if root.is_some_and(|text| text.contains("unix_socket")) {
        Vec::new()
    } else {
        vec![Change {
            action: "set",
            what: "root@localhost to unix_socket authentication".to_owned(),
            sql: "ALTER USER `root`@`localhost` IDENTIFIED VIA mysql_native_password \
                  USING 'invalid' OR unix_socket"
                .to_owned(),
        }]
    });

    let accounts = |conn: &mut Conn, condition: &str| -> Result<Vec<(String, String)>, DbError> {
        conn.query(format!(
            "SELECT User, Host FROM mysql.user WHERE is_role = 'N' AND {condition} \
             ORDER BY User, Host"
        ))
        .map_err(|e| target.refused(None, &e))
    };
    let drop_accounts = |found: Vec<(String, String)>, kind: &str| -> Vec<Change> {
        found
            .into_iter()
            .map(|(user, host)| Change {
                action: "drop",
                what: format!(
                    "the {kind} account '{}'@'{}'",
                    user.escape_debug(),
                    host.escape_debug()
                ),
                sql: format!("DROP USER {}", account(&user, &host)),
            })
            .collect()
    };
    check(drop_accounts(accounts(conn, "User = ''")?, "anonymous"));
    check(drop_accounts(
        accounts(conn, "User = 'root' AND Host <> 'localhost'")?,
        "remote root",
    ));

    for db in ["test", TEST_PATTERN] {
        let rows: Vec<String> = conn
            .exec(
                "SELECT Db FROM mysql.db WHERE User = 'PUBLIC' AND Host = '' AND Db = ?",
                (db,),
            )
            .map_err(refused)?;
        check(if rows.is_empty() {
            Vec::new()
        } else {
            vec![Change {
                action: "revoke",
                what: format!("PUBLIC's privileges on {db}"),
                sql: format!(
                    "REVOKE ALL PRIVILEGES ON {}.* FROM PUBLIC",
                    mysql_identifier(db)
                ),
            }]
        });
    }

    // The test database goes only while it is empty: tables in it are
    // someone's data.
    let test: Option<(u64, u64)> = conn
        .query_first(
            "SELECT COUNT(*), (SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'test') FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME = 'test'",
        )
        .map_err(refused)?;
    check(match test {
        Some((1, 0)) => vec![Change {
            action: "drop",
            what: "the database test".to_owned(),
            sql: "DROP DATABASE `test`".to_owned(),
        }],
        Some((1, tables)) => {
            report.warn(format_args!(
                "kept the database test: it holds {tables} table(s); drop it by hand"
            ));
            Vec::new()
        }
        _ => Vec::new(),
    });
    Ok((changes, unchanged))
}
