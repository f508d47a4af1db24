//! `mysql password USER [--account-host H]... --password-file F`: the
//! account(s) `USER@H` (every host USER has when none is given) set to the
//! hash of `db_mysql_auth` made here, written as a checked literal; an
//! account whose stored hash is one of the same password is left alone
//! (both hashes are deterministic), so a second run changes nothing.

use std::io::Write;
use std::time::Duration;

use mysql::Conn;
use mysql::prelude::Queryable;
use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};
use pysk_common::secret::Secret;

use crate::error::DbError;
use crate::mysql::connect::{self, Target};
use crate::mysql::hash::Auth;
use crate::mysql::setup::{INSTALL_ED25519, ed25519_active};
use crate::names::mysql_identifier;
use crate::plan::{self, Action, Step};

/// What `mysql password` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// How the hash is made.
    pub auth: Auth,
    /// The account's user name (checked by the name rule).
    pub user: String,
    /// Its hosts (checked); empty: every host it has.
    pub hosts: Vec<String>,
    /// The new password.
    pub password: Secret,
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
    user: &'a str,
    hosts: &'a [String],
    changes: &'a [Step],
}

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let mut conn = connect::connect(&options.target)?;
    let (hosts, steps) = plan(&mut conn, options)?;
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
            user: &options.user,
            hosts: &hosts,
            changes: &steps,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: {} has this password already at {}",
            options.user,
            hosts.join(", ")
        ));
    }
    Ok(Outcome::Success)
}

/// The hosts the password is for, and the statements their stored hashes
/// call for.
fn plan(conn: &mut Conn, options: &Options) -> Result<(Vec<String>, Vec<Step>), DbError> {
    let target = &options.target;
    let refused = |e: mysql::Error| target.refused(None, &e);
    let (user, auth) = (&options.user, options.auth);
    let stored: Vec<(String, String, String)> = conn
        .exec(
            "SELECT Host, plugin, authentication_string FROM mysql.user \
             WHERE User = ? AND is_role = 'N' ORDER BY Host",
            (user.as_str(),),
        )
        .map_err(refused)?;
    let hosts = if options.hosts.is_empty() {
        if stored.is_empty() {
            return Err(DbError::Conflict(format!("there is no account {user}")));
        }
        stored.iter().map(|(host, _, _)| host.clone()).collect()
    } else {
        for host in &options.hosts {
            if !stored.iter().any(|(h, _, _)| h == host) {
                return Err(DbError::Conflict(format!(
                    "there is no account {user}@{host}"
                )));
            }
        }
        options.hosts.clone()
    };
    let hash = auth.hash(options.password.expose().as_bytes());
    if !auth.well_formed(&hash) {
        return Err(DbError::Common(pysk_common::Error::Internal(format!(
            "a {} hash of the wrong form",
            auth.plugin()
        ))));
    }
    let mut steps = Vec::new();
    for (host, plugin, text) in &stored {
        if !hosts.contains(host) || (plugin == auth.plugin() && *text == hash) {
            continue;
        }
        if steps.is_empty() && auth == Auth::Ed25519 && !ed25519_active(conn, target)? {
            steps.push(Step::plain(
                Action::Install,
                None,
                "the ed25519 authentication plugin".to_owned(),
                INSTALL_ED25519.to_owned(),
            ));
        }
        let account = format!("{}@{}", mysql_identifier(user), mysql_identifier(host));
        steps.push(Step::secret(
            Action::Set,
            None,
            format!("{user}@{host}'s password"),
            format!("ALTER USER {account} {}", auth.clause("***")),
            format!("ALTER USER {account} {}", auth.clause(&hash)),
        ));
    }
    Ok((hosts, steps))
}
