//! The drill's throw-away MariaDB: `mariadb-install-db` and `mariadbd`,
//! both with `--no-defaults` (no option file of the machine's takes
//! part), started as the `mysql` account rather than switching to it
//! themselves (`--user`): the switch then comes before
//! `PR_SET_PDEATHSIG`, which a later change of user would clear, so the
//! server dies with a killed drill. The data, the socket and a tmpdir of
//! its own lie in the drill's temporary directory, no TCP listener, root
//! by `unix_socket`. Stopped when dropped: SIGTERM (a clean shutdown),
//! then SIGKILL.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{User, chown};

use pysk_common::error::write_err;

use super::{BOUND, log_tail, stop};
use crate::child;
use crate::error::BackupError;
use crate::load::mysql::Server;

/// The account the server runs as.
const ACCOUNT: &str = "mysql";

/// Small, fast settings, the same for the install and the server (the
/// InnoDB files they make must agree); durability is not needed.
const SMALL: [&str; 4] = [
    "--innodb-log-file-size=16M",
    "--innodb-use-native-aio=0",
    "--innodb-doublewrite=0",
    "--innodb-flush-log-at-trx-commit=0",
];

/// A running throw-away MariaDB.
#[derive(Debug)]
pub struct Mariadb {
    /// The server, as the loaders reach it.
    pub server: Server,
    child: Child,
    log: PathBuf,
}

impl Mariadb {
    /// Installs the system tables in `root/mariadb` and starts the
    /// server; answering when this returns.
    pub fn start(root: &Path) -> Result<Mariadb, BackupError> {
        let account =
            User::from_name(ACCOUNT)
                .ok()
                .flatten()
                .ok_or_else(|| BackupError::Unavailable {
                    what: "mariadbd".into(),
                    reason: format!("no system account {ACCOUNT} (is mariadb-server installed?)"),
                })?;
        let dir = root.join("mariadb");
        let (data, tmp) = (dir.join("data"), dir.join("tmp"));
        for d in [&dir, &tmp] {
            fs::create_dir(d).map_err(write_err(d))?;
            fs::set_permissions(d, fs::Permissions::from_mode(0o700)).map_err(write_err(d))?;
            chown(d, Some(account.uid), Some(account.gid)).map_err(|e| write_err(d)(e.into()))?;
        }
        let common = [
            "--no-defaults".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", tmp.display()),
        ];
        install(&common, &account)?;
        let socket = dir.join("mysqld.sock");
        let log = dir.join("mariadbd.log");
        let mut args = common.to_vec();
        args.extend([
            format!("--socket={}", socket.display()),
            "--skip-networking".into(),
            format!("--pid-file={}", dir.join("mariadbd.pid").display()),
            format!("--log-error={}", log.display()),
        ]);
        args.extend(SMALL.map(str::to_owned));
        let mut cmd = child::managed("mariadbd", args, Some(&account));
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| BackupError::Unavailable {
            what: "mariadbd".into(),
            reason: pysk_common::error::cause(&e),
        })?;
        let mut db = Mariadb {
            server: Server {
                socket,
                timeout: super::CONNECT_TIMEOUT,
            },
            child,
            log,
        };
        db.wait_ready()?;
        Ok(db)
    }

    /// Waits until root's session is taken, at most [`BOUND`].
    fn wait_ready(&mut self) -> Result<(), BackupError> {
        let start = Instant::now();
        loop {
            if self.server.socket.exists() && self.server.connect().is_ok() {
                return Ok(());
            }
            let gone = matches!(self.child.try_wait(), Ok(Some(_)));
            if gone || start.elapsed() > BOUND {
                return Err(BackupError::Failed {
                    step: "starting the drill's MariaDB".into(),
                    reason: format!(
                        "{}: {}",
                        if gone {
                            "it exited"
                        } else {
                            "not answering in time"
                        },
                        log_tail(&self.log)
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        stop(&mut self.child, &[(Signal::SIGTERM, 60)]);
    }
}

/// `mariadb-install-db` as `account`: the system tables, root by
/// `unix_socket`, no test database.
fn install(common: &[String], account: &User) -> Result<(), BackupError> {
    let mut args = common.to_vec();
    args.extend([
        "--auth-root-authentication-method=socket".to_owned(),
        "--auth-root-socket-user=root".into(),
        "--skip-test-db".into(),
    ]);
    args.extend(SMALL.map(str::to_owned));
    let cmd = child::program("mariadb-install-db", Some(account)).args(args);
    crate::load::feed(cmd, std::io::empty())
        .map(drop)
        .map_err(|reason| BackupError::Failed {
            step: "mariadb-install-db of the drill's MariaDB".into(),
            reason,
        })
}
