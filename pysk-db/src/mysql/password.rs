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
    /// The account's user name (checked by the name rule; not a system
    /// account).
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

/// An account of a user as the server stores it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its host.
    pub host: String,
    /// Its (first) authentication plugin.
    pub plugin: String,
    /// That plugin's hash.
    pub hash: String,
    /// Whether further plugins follow (`… OR unix_socket`).
    pub chained: bool,
}

impl Stored {
    /// Whether it already holds `hash` of `auth`, and nothing else.
    pub fn holds(&self, auth: Auth, hash: &str) -> bool {
        !self.chained && self.plugin == auth.plugin() && self.hash == hash
    }

    /// Whether its stored hash is one of `password` by its own plugin
    /// (a password one, alone): the account's password is `password`.
    pub fn holds_password(&self, password: &Secret) -> bool {
        [Auth::Ed25519, Auth::Native]
            .iter()
            .any(|auth| self.holds(*auth, &auth.hash(password.expose().as_bytes())))
    }

    /// What setting its password by `auth` does, in words: the plugin
    /// too when it changes (`db_mysql_auth` is not the account's), since
    /// a client may speak one and not the other (PHP's mysqlnd has no
    /// ed25519).
    pub fn set_what(&self, user: &str, auth: Auth) -> String {
        let password = format!("{user}@{}'s password", self.host);
        if self.plugin == auth.plugin() {
            return password;
        }
        format!(
            "{password}, and its authentication from {} to {}",
            self.plugin,
            auth.plugin()
        )
    }

    /// `Ok` when its password may be replaced: one plugin, a password
    /// one (`ed25519`, `mysql_native_password`). Any other way in
    /// (`unix_socket`, a chain of plugins) is the admin's, and replacing
    /// it could lock root or a service out.
    pub fn replaceable(&self, user: &str) -> Result<(), DbError> {
        let how = if self.chained {
            format!("{} OR another plugin", self.plugin)
        } else if [Auth::Ed25519, Auth::Native]
            .iter()
            .any(|a| a.plugin() == self.plugin)
        {
            return Ok(());
        } else {
            self.plugin.clone()
        };
        Err(DbError::Conflict(format!(
            "{user}@{} signs in by {how}, not by a password alone: left as it is",
            self.host
        )))
    }
}

/// Every account of `user` (roles are not accounts), by host: the plugin
/// chain is read from `mysql.global_priv`, since `mysql.user` shows only
/// its first plugin.
pub fn stored(conn: &mut Conn, target: &Target, user: &str) -> Result<Vec<Stored>, DbError> {
    let rows: Vec<(String, String, String, Option<u64>)> = conn
        .exec(
            "SELECT u.Host, u.plugin, u.authentication_string, \
             JSON_LENGTH(g.Priv, '$.auth_or') \
             FROM mysql.user u JOIN mysql.global_priv g ON g.User = u.User AND g.Host = u.Host \
             WHERE u.User = ? AND u.is_role = 'N' ORDER BY u.Host",
            (user,),
        )
        .map_err(|e| target.refused(None, &e))?;
    Ok(rows
        .into_iter()
        .map(|(host, plugin, hash, chain)| Stored {
            host,
            plugin,
            hash,
            chained: chain.unwrap_or(0) > 0,
        })
        .collect())
}

/// The hash of `password` by `auth`, checked for the form the statement
/// takes it in as a literal.
pub fn hash(auth: Auth, password: &Secret) -> Result<String, DbError> {
    let hash = auth.hash(password.expose().as_bytes());
    if !auth.well_formed(&hash) {
        return Err(DbError::Common(pysk_common::Error::Internal(format!(
            "a {} hash of the wrong form",
            auth.plugin()
        ))));
    }
    Ok(hash)
}

/// The hosts the password is for: those asked for (each must exist),
/// else every host the user has.
fn hosts(options: &Options, stored: &[Stored]) -> Result<Vec<String>, DbError> {
    let user = &options.user;
    if options.hosts.is_empty() {
        if stored.is_empty() {
            return Err(DbError::Conflict(format!("there is no account {user}")));
        }
        return Ok(stored.iter().map(|s| s.host.clone()).collect());
    }
    for host in &options.hosts {
        if !stored.iter().any(|s| &s.host == host) {
            return Err(DbError::Conflict(format!(
                "there is no account {user}@{host}"
            )));
        }
    }
    Ok(options.hosts.clone())
}

/// The hosts the password is for, and the statements their stored hashes
/// call for.
fn plan(conn: &mut Conn, options: &Options) -> Result<(Vec<String>, Vec<Step>), DbError> {
    let target = &options.target;
    let (user, auth) = (&options.user, options.auth);
    let stored = stored(conn, target, user)?;
    let hosts = hosts(options, &stored)?;
    let chosen: Vec<&Stored> = stored.iter().filter(|s| hosts.contains(&s.host)).collect();
    for account in &chosen {
        account.replaceable(user)?;
    }
    let hash = hash(auth, &options.password)?;
    let mut steps = Vec::new();
    for account in chosen.into_iter().filter(|s| !s.holds(auth, &hash)) {
        if steps.is_empty() && auth == Auth::Ed25519 && !ed25519_active(conn, target)? {
            steps.push(Step::plain(
                Action::Install,
                None,
                "the ed25519 authentication plugin".to_owned(),
                INSTALL_ED25519.to_owned(),
            ));
        }
        let what = account.set_what(user, auth);
        let account = format!(
            "{}@{}",
            mysql_identifier(user),
            mysql_identifier(&account.host)
        );
        steps.push(Step::secret(
            Action::Set,
            None,
            what,
            format!("ALTER USER {account} {}", auth.clause("***")),
            format!("ALTER USER {account} {}", auth.clause(&hash)),
        ));
    }
    Ok((hosts, steps))
}
