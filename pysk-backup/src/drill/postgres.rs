//! The drill's throw-away PostgreSQL: `initdb` and `postgres` of the
//! newest version below `/usr/lib/postgresql`, run as the superuser's
//! system account, the cluster and its socket in the drill's temporary
//! directory, no TCP listener. Stopped when dropped: a fast shutdown
//! (SIGINT) that ends every session, then an immediate one (SIGQUIT),
//! then SIGKILL — PostgreSQL's children each call `setsid()`, so only the
//! postmaster is signalled, and it ends them.
//!
//! The globals' tablespaces are made in directories of the drill's own
//! (each `CREATE TABLESPACE … LOCATION` rewritten), and the databases
//! loaded without tablespaces: the throw-away server runs as the account
//! that owns production's tablespace directories, and must never write
//! there.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::chown;

use pysk_common::error::{cause, write_err};
use pysk_db::pg::connect::Target;

use super::{BOUND, log_tail, stop};
use crate::child;
use crate::error::BackupError;
use crate::load::pg::{Server, bin_dir};

/// The port that names the socket; nothing listens on TCP.
const PORT: u16 = 5432;

/// A running throw-away PostgreSQL.
#[derive(Debug)]
pub struct Postgres {
    /// The server, as the loaders reach it.
    pub server: Server,
    child: Child,
    log: PathBuf,
    dir: PathBuf,
}

impl Postgres {
    /// Makes a cluster in `root/postgresql` and starts it; ready to take
    /// connections when this returns.
    pub fn start(root: &Path, superuser: &str) -> Result<Postgres, BackupError> {
        let bin = bin_dir().ok_or_else(|| BackupError::Unavailable {
            what: "postgres".into(),
            reason: "no PostgreSQL server below /usr/lib/postgresql (is it installed?)".into(),
        })?;
        let dir = root.join("postgresql");
        let data = dir.join("data");
        let target = Target {
            socket_dir: dir.clone(),
            port: PORT,
            superuser: superuser.to_owned(),
            connect_timeout: super::CONNECT_TIMEOUT,
        };
        let server = Server::new(target)?;
        fs::create_dir(&dir).map_err(write_err(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(write_err(&dir))?;
        chown(&dir, Some(server.account.uid), Some(server.account.gid))
            .map_err(|e| write_err(&dir)(e.into()))?;
        initdb(&bin, &server, &data)?;
        configure(&data, &dir)?;
        let log = dir.join("postgres.log");
        let out = File::create(&log).map_err(write_err(&log))?;
        let err = out.try_clone().map_err(write_err(&log))?;
        let mut cmd = child::managed(
            &bin.join("postgres").display().to_string(),
            ["-D".as_ref(), data.as_os_str()],
            Some(&server.account),
        );
        cmd.stdout(out).stderr(err);
        let child = cmd.spawn().map_err(|e| BackupError::Unavailable {
            what: "postgres".into(),
            reason: pysk_common::error::cause(&e),
        })?;
        let mut pg = Postgres {
            server,
            child,
            log,
            dir,
        };
        pg.wait_ready(&data.join("postmaster.pid"))?;
        Ok(pg)
    }

    /// Waits until the postmaster says `ready` in its pid file (what
    /// `pg_ctl -w` waits for), at most [`BOUND`].
    fn wait_ready(&mut self, pid_file: &Path) -> Result<(), BackupError> {
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(pid_file).unwrap_or_default();
            if text.lines().nth(7).map(str::trim) == Some("ready") {
                return Ok(());
            }
            let gone = matches!(self.child.try_wait(), Ok(Some(_)));
            if gone || start.elapsed() > BOUND {
                return Err(BackupError::Failed {
                    step: "starting the drill's PostgreSQL".into(),
                    reason: format!(
                        "{}: {}",
                        if gone {
                            "it exited"
                        } else {
                            "not ready in time"
                        },
                        log_tail(&self.log)
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Postgres {
    /// Runs `globals.sql`, each tablespace made in a directory of the
    /// drill's ([`relocate`]).
    pub fn globals(&self, file: &Path) -> Result<(), String> {
        let said = |e: std::io::Error| format!("{}: {}", file.display(), cause(&e));
        let sql = fs::read_to_string(file).map_err(said)?;
        let (sql, dirs) = relocate(&sql, &self.dir.join("tablespaces"))?;
        for dir in &dirs {
            let account = &self.server.account;
            fs::create_dir_all(dir)
                .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
                .and_then(|()| chown(dir, Some(account.uid), Some(account.gid)).map_err(Into::into))
                .map_err(|e| format!("{}: {}", dir.display(), cause(&e)))?;
        }
        self.server.globals(sql.as_bytes())
    }
}

/// `globals.sql` with the `LOCATION` of each `CREATE TABLESPACE` (one
/// line of `pg_dumpall`'s, ending `';`) replaced by a directory below
/// `base`; those directories. A statement of another shape is refused
/// rather than run as it is.
fn relocate(sql: &str, base: &Path) -> Result<(String, Vec<PathBuf>), String> {
    let mut out = String::with_capacity(sql.len());
    let mut dirs = Vec::new();
    for line in sql.split_inclusive('\n') {
        let statement = line.trim_end_matches('\n');
        if !statement.starts_with("CREATE TABLESPACE ") {
            out.push_str(line);
            continue;
        }
        let head = statement
            .strip_suffix("';")
            .and_then(|s| s.rfind(" LOCATION '").map(|at| &statement[..at]))
            .ok_or_else(|| format!("a tablespace the drill cannot move: {statement}"))?;
        let dir = base.join(dirs.len().to_string());
        let location = dir.display().to_string().replace('\'', "''");
        out.push_str(&format!("{head} LOCATION '{location}';\n"));
        dirs.push(dir);
    }
    Ok((out, dirs))
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(
            &mut self.child,
            &[(Signal::SIGINT, 30), (Signal::SIGQUIT, 5)],
        );
    }
}

/// `initdb` of a UTF-8 cluster, the superuser reached by peer
/// authentication only, not waiting for the disk (it is thrown away).
fn initdb(bin: &Path, server: &Server, data: &Path) -> Result<(), BackupError> {
    let args = [
        "--no-sync".to_owned(),
        format!("--pgdata={}", data.display()),
        format!("--username={}", server.target.superuser),
        "--encoding=UTF8".into(),
        "--locale=C.UTF-8".into(),
        "--auth-local=peer".into(),
        "--auth-host=reject".into(),
    ];
    let cmd = child::program(
        &bin.join("initdb").display().to_string(),
        Some(&server.account),
    )
    .args(args);
    crate::load::feed(cmd, std::io::empty())
        .map(drop)
        .map_err(|reason| BackupError::Failed {
            step: "initdb of the drill's PostgreSQL".into(),
            reason,
        })
}

/// The socket in `socket_dir` alone, and durability traded for speed.
fn configure(data: &Path, socket_dir: &Path) -> Result<(), BackupError> {
    let conf = data.join("postgresql.conf");
    let dir = socket_dir.display().to_string().replace('\'', "''");
    let text = format!(
        "\n# pysk-backup drill\nlisten_addresses = ''\nport = {PORT}\n\
         unix_socket_directories = '{dir}'\nfsync = off\nsynchronous_commit = off\n\
         full_page_writes = off\n"
    );
    OpenOptions::new()
        .append(true)
        .open(&conf)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(write_err(&conf))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tablespace_moves_below_the_drill_and_an_odd_one_is_refused() {
        let sql = "CREATE ROLE a;\n\
                   CREATE TABLESPACE ts OWNER a LOCATION '/srv/pg''ts';\n\
                   GRANT CREATE ON TABLESPACE ts TO a;\n\
                   CREATE TABLESPACE \"T 2\" OWNER a LOCATION '/srv/t2';\n";
        let (moved, dirs) = relocate(sql, Path::new("/tmp/d'r/ts")).expect("moved");
        assert_eq!(
            moved,
            "CREATE ROLE a;\n\
             CREATE TABLESPACE ts OWNER a LOCATION '/tmp/d''r/ts/0';\n\
             GRANT CREATE ON TABLESPACE ts TO a;\n\
             CREATE TABLESPACE \"T 2\" OWNER a LOCATION '/tmp/d''r/ts/1';\n"
        );
        assert_eq!(
            dirs,
            [Path::new("/tmp/d'r/ts/0"), Path::new("/tmp/d'r/ts/1")]
        );
        assert!(relocate("CREATE TABLESPACE x LOCATION '/a\nb';\n", Path::new("/t")).is_err());
    }
}
