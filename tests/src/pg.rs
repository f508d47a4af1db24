//! A throw-away PostgreSQL server for tests, set up as Debian sets up a
//! cluster: `initdb` and `postgres` from `/usr/lib/postgresql/<newest>/bin`
//! (not on `PATH` on Debian) run as the `postgres` account, which they
//! demand (they refuse root); the superuser `postgres` reaches it by peer
//! authentication over the Unix socket and every other role by password
//! (`scram-sha-256`). No TCP listener: the socket lives in the scratch
//! directory, named after a free port number. Every statement is logged
//! (`log_statement = 'all'`) to a file the test reads, so that a test can
//! assert that no plaintext password ever reached the server.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::cmd::run_fed;
use crate::{Ready, Server, free_port, require};

/// How long `initdb`, the server's start or one `psql` may take before the
/// test fails.
const BOUND: Duration = Duration::from_secs(30);

/// Where Debian installs each PostgreSQL version's programs
/// (`<version>/bin`).
const PG_LIB: &str = "/usr/lib/postgresql";

/// The pg_hba.conf Debian's `pg_createcluster` writes, but for one line:
/// `local all all` asks for a password (`scram-sha-256`) instead of `peer`.
/// With no TCP listener the stock `host ... scram-sha-256` lines, which
/// carry a customer's password login on a stock cluster, cannot be reached,
/// and under peer a role other than the OS user's own could not log in
/// through the socket at all; this line puts the very same check on the
/// socket. `postgres` stays peer, as its line comes first; a role whose
/// stored secret is an MD5 hash cannot log in (as on Debian's host lines).
const PG_HBA: &str = "\
# Debian's stock pg_hba.conf; `local all all peer` replaced by scram-sha-256
# (the server listens on its Unix socket only).
local   all             postgres                                peer
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
";

/// A running PostgreSQL; stopped (with every process it started) when
/// dropped.
pub struct Postgres {
    server: Server,
    /// The directory holding the server's socket (`unix_socket_directories`,
    /// what clients give as host).
    pub socket_dir: PathBuf,
    /// The port number naming the socket (`.s.PGSQL.<port>`); nothing
    /// listens on TCP.
    pub port: u16,
    /// The cluster's data directory (`PGDATA`), owned by `postgres`.
    pub data_dir: PathBuf,
    /// The directory of the server's programs (`/usr/lib/postgresql/N/bin`):
    /// `psql`, `pg_dump`, `createdb`, `vacuumdb` of the same version.
    pub bin_dir: PathBuf,
    /// The directory the clients run in (readable by `postgres`).
    home: PathBuf,
    account: Account,
}

/// A system account's ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Account {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl Postgres {
    /// Initialises a cluster under `dir/postgres` and starts its server;
    /// `None` (outside CI) when PostgreSQL is not installed.
    ///
    /// # Panics
    /// When the `postgres` account is missing, or `initdb` or the server
    /// fails or is not ready within the bound; the panic shows their
    /// output.
    pub fn start(dir: &Path) -> Option<Postgres> {
        let bin_dir = newest_bin_dir();
        for program in ["initdb", "postgres", "psql"] {
            let path = bin_dir.join(program);
            require(path.to_str().expect("a UTF-8 path"), "postgresql")?;
        }
        let account = account("postgres").expect("the postgres account (package postgresql)");
        let home = dir.join("postgres");
        let socket_dir = home.join("run");
        let data_dir = home.join("data");
        reachable(dir);
        for d in [&home, &socket_dir] {
            fs::create_dir_all(d).expect("create the PostgreSQL directories");
            std::os::unix::fs::chown(d, Some(account.uid), Some(account.gid))
                .expect("chown a PostgreSQL directory to postgres");
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .expect("chmod a PostgreSQL directory");
        }
        initdb(&bin_dir, account, &home, &data_dir);
        let port = free_port();
        configure(&data_dir, &socket_dir, port);

        let log = home.join("postgres.log");
        let mut cmd = Command::new(bin_dir.join("postgres"));
        cmd.arg("-D").arg(&data_dir);
        as_account(&mut cmd, account, &home);
        let pid_file = data_dir.join("postmaster.pid");
        let server = Server::start("postgres", cmd, &log, Ready::File(pid_file.clone()), BOUND);
        let pg = Postgres {
            server,
            socket_dir,
            port,
            data_dir,
            bin_dir,
            home,
            account,
        };
        pg.wait_accepting(&pid_file);
        Some(pg)
    }

    /// Waits until the postmaster reports `ready` in its pid file (its
    /// eighth line, what `pg_ctl -w` waits for): it accepts connections.
    fn wait_accepting(&self, pid_file: &Path) {
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(pid_file).unwrap_or_default();
            if text.lines().nth(7).map(str::trim) == Some("ready") {
                return;
            }
            assert!(
                start.elapsed() < BOUND,
                "postgres did not accept connections within {BOUND:?}; its log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the server has logged so far: every statement
    /// (`log_statement = 'all'`), each line prefixed as Debian does
    /// (`%m [%p] %q%u@%d `).
    pub fn log_text(&self) -> String {
        self.server.log_text()
    }

    /// The postmaster's process id (the leader of the server's process
    /// group).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Runs `sql` (one statement or several, fed on stdin) with `psql` as
    /// the superuser `postgres` (peer authentication over the socket) in
    /// database `postgres`, stopping at the first error; returns the
    /// output unaligned and without headers (`-A -t`), its last newline
    /// removed.
    ///
    /// # Panics
    /// When psql fails; the panic shows its stderr.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// [`Postgres::psql`] in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self.psql_output(db, sql);
        assert!(
            out.status.success(),
            "psql failed ({}) on {sql:?}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("psql's output is UTF-8");
        text.strip_suffix('\n').unwrap_or(&text).to_owned()
    }

    /// Runs `sql` as `postgres` in `db` as [`Postgres::psql`] does,
    /// whatever the outcome: for tests that expect a failure.
    pub fn psql_output(&self, db: &str, sql: &str) -> Output {
        let mut cmd = self.psql_command(db, "postgres");
        as_account(&mut cmd, self.account, &self.home);
        run_fed(cmd, sql.as_bytes(), BOUND)
    }

    /// Logs in as `user` with `password` (given in `PGPASSWORD`, never on
    /// the command line) through the socket and runs `sql` in `db`, as
    /// the user running the tests (so that peer authentication cannot
    /// stand in for the password): the outcome, whatever it is.
    pub fn login(&self, user: &str, password: &str, db: &str, sql: &str) -> Output {
        let mut cmd = self.psql_command(db, user);
        cmd.current_dir(&self.home).env("PGPASSWORD", password);
        run_fed(cmd, sql.as_bytes(), BOUND)
    }

    /// Makes `cmd` run as the system account `name` (no supplementary
    /// groups) in the server's directory, which every account may read:
    /// for a tool run as `postgres` itself, or as someone else.
    ///
    /// # Panics
    /// When there is no such account.
    pub fn run_as(&self, cmd: &mut Command, name: &str) {
        let account = account(name).unwrap_or_else(|| panic!("no system account {name}"));
        as_account(cmd, account, &self.home);
    }

    /// `psql -X -A -t -v ON_ERROR_STOP=1` on this server's socket as
    /// `user` in `db`, reading the SQL from stdin; no `PG*` variable of
    /// the test's environment leaks in.
    fn psql_command(&self, db: &str, user: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("psql"));
        clean_env(&mut cmd);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-w"])
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", user, "-d", db, "-f", "-"]);
        cmd
    }
}

impl Drop for Postgres {
    /// Stops the server and every process it started. Each child of the
    /// postmaster leads a process group of its own (PostgreSQL calls
    /// `setsid()` in every child), so the group signal of [`Server`]'s drop
    /// reaches the postmaster alone, for which SIGTERM is a "smart"
    /// shutdown that waits for every session to end. A fast shutdown
    /// (SIGINT) ends the sessions, and the postmaster exits after all its
    /// children have; should it hang, an immediate shutdown (SIGQUIT).
    fn drop(&mut self) {
        let Ok(pid) = i32::try_from(self.server.pid()) else {
            return;
        };
        for (signal, bound) in [(libc::SIGINT, 10), (libc::SIGQUIT, 5)] {
            // SAFETY: kill(2) on our own child, not yet reaped (the
            // Server reaps it when dropped after this).
            unsafe { libc::kill(pid, signal) };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(bound) {
                if exited(self.server.pid()) {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Whether process `pid` has exited: gone, or a zombie not reaped yet.
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// The `bin` directory of the newest PostgreSQL below `/usr/lib/postgresql`
/// (`15` if there is none, which [`require`] then reports missing). The
/// real programs, not the wrappers `/usr/bin` or `/usr/local/bin` may hold.
fn newest_bin_dir() -> PathBuf {
    let version = |name: &str| -> Option<Vec<u32>> {
        name.split('.').map(|part| part.parse().ok()).collect()
    };
    fs::read_dir(PG_LIB)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let v = version(&name)?;
            e.path()
                .join("bin/postgres")
                .is_file()
                .then_some((v, e.path()))
        })
        .max()
        .map_or_else(
            || Path::new(PG_LIB).join("15/bin"),
            |(_, dir)| dir.join("bin"),
        )
}

/// `initdb` of a UTF-8 cluster (locale `C.UTF-8`, present on every Debian)
/// in `data_dir` with superuser `postgres`, not waiting for the disk.
fn initdb(bin_dir: &Path, account: Account, home: &Path, data_dir: &Path) {
    let mut cmd = Command::new(bin_dir.join("initdb"));
    clean_env(&mut cmd);
    cmd.arg("--no-sync")
        .arg("-D")
        .arg(data_dir)
        .args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"])
        .args(["--auth-local=peer", "--auth-host=scram-sha-256"]);
    as_account(&mut cmd, account, home);
    let out = run_fed(cmd, b"", BOUND);
    assert!(
        out.status.success(),
        "initdb failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's authentication ([`PG_HBA`]) and the test server's settings:
/// the socket alone, every statement logged to stderr with Debian's line
/// prefix, and durability traded for speed.
fn configure(data_dir: &Path, socket_dir: &Path, port: u16) {
    let socket_dir = socket_dir.to_str().expect("a UTF-8 socket directory");
    assert!(!socket_dir.contains(['\'', '\\']), "a plain socket path");
    fs::write(data_dir.join("pg_hba.conf"), PG_HBA).expect("write pg_hba.conf");
    let settings = format!(
        "\n# pysk test server\n\
         listen_addresses = ''\n\
         port = {port}\n\
         unix_socket_directories = '{socket_dir}'\n\
         log_destination = 'stderr'\n\
         logging_collector = off\n\
         log_statement = 'all'\n\
         log_line_prefix = '%m [%p] %q%u@%d '\n\
         password_encryption = 'scram-sha-256'\n\
         shared_buffers = 16MB\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n"
    );
    let conf = data_dir.join("postgresql.conf");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .expect("open postgresql.conf");
    file.write_all(settings.as_bytes())
        .expect("append to postgresql.conf");
}

/// Makes `dir` and its parents up to `/tmp` traversable by every account
/// (adds `o+x`), so that a server running as its own user reaches its
/// directories below.
pub(crate) fn reachable(dir: &Path) {
    let mut p = dir.to_path_buf();
    while p.parent().is_some() && p != Path::new("/tmp") {
        if let Ok(meta) = fs::metadata(&p) {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                let _ = fs::set_permissions(&p, fs::Permissions::from_mode(mode | 0o011));
            }
        }
        p.pop();
    }
}

/// The ids of the system account `name`, `None` when there is none.
pub(crate) fn account(name: &str) -> Option<Account> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam(3) with a NUL-terminated name; the record is read
    // at once, before any other call could reuse its static storage.
    let pw = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null, as checked.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Some(Account { uid, gid })
}

/// Runs `cmd` as `account` (no supplementary groups) in `dir`.
fn as_account(cmd: &mut Command, account: Account, dir: &Path) {
    cmd.uid(account.uid).gid(account.gid).current_dir(dir);
}

/// Removes every `PG*` variable, so that the test's environment cannot
/// point a client or server elsewhere.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}
