//! A throw-away MariaDB server for tests, as fresh as Debian's
//! `mariadb-install-db` leaves one when it is not told `--skip-test-db`
//! (Debian's own postinst tells it; a hand-run install does not): root and
//! `mysql` at `localhost` by `unix_socket` (their password `invalid`), the
//! anonymous accounts `''@localhost` and `''@<hostname>`, the `test`
//! database and the `PUBLIC` role's grants on `test` and `test\_%`. The
//! server (`mariadbd --user=mysql`) listens on a Unix socket in the scratch
//! directory only, with the general log on, so that a test can assert that
//! no plaintext password ever reached the server.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::cmd::run_fed;
use crate::pg::{account, reachable};
use crate::{Ready, Server, require, secret_file};

/// How long the install, the server's start or one client may take before
/// the test fails.
const BOUND: Duration = Duration::from_secs(30);

/// Settings that make a test server start in a fraction of a second and
/// stay small, shared by the install and the server (the InnoDB files they
/// make must agree); none changes what the tests look at.
const SMALL: [&str; 4] = [
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    // io_uring and libaio need locked memory a container may not grant.
    "--innodb-use-native-aio=0",
    "--innodb-doublewrite=0",
];

/// A running MariaDB; stopped when dropped.
pub struct Mariadb {
    server: Server,
    /// The server's socket (`--socket`); there is no TCP listener.
    pub socket: PathBuf,
    /// Its data directory, owned by `mysql`.
    pub data_dir: PathBuf,
    /// The general log: every connection and statement.
    general_log: PathBuf,
    /// The error log.
    error_log: PathBuf,
    /// The `mariadb` client.
    client: PathBuf,
    /// Where the server's files are (and client option files go).
    home: PathBuf,
}

impl Mariadb {
    /// Installs the system tables under `dir/mariadb` (with the test
    /// database) and starts the server; `None` (outside CI) when MariaDB's
    /// server or client is not installed.
    ///
    /// # Panics
    /// When the `mysql` account is missing, or the install or the server
    /// fails or does not answer within the bound; the panic shows their
    /// output.
    pub fn start(dir: &Path) -> Option<Mariadb> {
        let install = require("mariadb-install-db", "mariadb-server")?;
        let mariadbd = require("mariadbd", "mariadb-server")?;
        let client = require("mariadb", "mariadb-client")?;
        let mysql = account("mysql").expect("the mysql account (package mariadb-server)");
        let home = dir.join("mariadb");
        reachable(dir);
        fs::create_dir_all(&home).expect("create the MariaDB directory");
        std::os::unix::fs::chown(&home, Some(mysql.uid), Some(mysql.gid))
            .expect("chown the MariaDB directory to mysql");
        fs::set_permissions(&home, fs::Permissions::from_mode(0o755))
            .expect("chmod the MariaDB directory");
        let data_dir = home.join("data");
        // Its own directory for temporary tables: a starting server deletes
        // every `#sql*` file in its tmpdir, which would be the temporary
        // tables of another test's server sharing /tmp.
        let tmp = home.join("tmp");
        fs::create_dir(&tmp).expect("create the MariaDB tmpdir");
        std::os::unix::fs::chown(&tmp, Some(mysql.uid), Some(mysql.gid))
            .expect("chown the MariaDB tmpdir to mysql");
        let tmpdir = format!("--tmpdir={}", tmp.display());

        // No option file of the machine's (/etc/mysql) takes part.
        let mut cmd = Command::new(install);
        cmd.arg("--no-defaults")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", data_dir.display()))
            .arg(&tmpdir)
            .args(SMALL)
            .current_dir(&home);
        let out = run_fed(cmd, b"", BOUND);
        assert!(
            out.status.success(),
            "mariadb-install-db failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let socket = home.join("mysqld.sock");
        let general_log = home.join("general.log");
        let error_log = home.join("error.log");
        let mut cmd = Command::new(mariadbd);
        cmd.arg("--no-defaults")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", data_dir.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(&tmpdir)
            .arg("--skip-networking")
            .arg("--general-log")
            .arg(format!("--general-log-file={}", general_log.display()))
            .arg(format!("--log-error={}", error_log.display()))
            .arg(format!(
                "--pid-file={}",
                home.join("mariadbd.pid").display()
            ))
            // What Debian's 50-server.cnf sets.
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args(SMALL)
            .arg("--innodb-flush-log-at-trx-commit=0")
            .current_dir(&home);
        let server = Server::start(
            "mariadbd",
            cmd,
            &home.join("mariadbd.out"),
            Ready::File(socket.clone()),
            BOUND,
        );
        let db = Mariadb {
            server,
            socket,
            data_dir,
            general_log,
            error_log,
            client,
            home,
        };
        db.wait_answering();
        Some(db)
    }

    /// Waits until root's `SELECT 1` is answered: the socket exists a
    /// moment before the server serves it.
    fn wait_answering(&self) {
        let start = Instant::now();
        loop {
            let out = self.mariadb_output("SELECT 1");
            if out.status.success() && out.stdout == b"1\n" {
                return;
            }
            assert!(
                start.elapsed() < BOUND,
                "mariadbd did not answer within {BOUND:?}: {}\nits error log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.error_log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id (`mariadbd`, the leader of its process
    /// group).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The general log so far: each connection and every statement as the
    /// server received it.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.general_log).unwrap_or_default()
    }

    /// The error log so far (start, shutdown, warnings).
    pub fn error_log_text(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// Runs `sql` (one statement or several) with the `mariadb` client as
    /// root over the socket (`unix_socket` authentication); returns the
    /// rows tab-separated without column names (`-N -B`: a backslash, tab
    /// or newline in a value comes escaped as `\\`, `\t`, `\n`), the last
    /// newline removed.
    ///
    /// # Panics
    /// When the client fails; the panic shows its stderr.
    pub fn mariadb(&self, sql: &str) -> String {
        let out = self.mariadb_output(sql);
        assert!(
            out.status.success(),
            "mariadb failed ({}) on {sql:?}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("the client's output is UTF-8");
        text.strip_suffix('\n').unwrap_or(&text).to_owned()
    }

    /// Runs `sql` as root as [`Mariadb::mariadb`] does, whatever the
    /// outcome: for tests that expect a failure.
    pub fn mariadb_output(&self, sql: &str) -> Output {
        let mut cmd = self.client_command("--no-defaults");
        cmd.args(["-u", "root", "-e", sql]);
        run_fed(cmd, b"", BOUND)
    }

    /// Logs in as `user` with `password` over the socket and runs `sql`:
    /// the outcome, whatever it is. The password goes to the client in an
    /// option file of mode 0600 (`--defaults-file`), never on its command
    /// line.
    pub fn login(&self, user: &str, password: &str, sql: &str) -> Output {
        assert!(
            !password.contains(['\n', '"', '\\']),
            "a test password needs no quoting in an option file"
        );
        let file = self.home.join(format!("client-{user}.cnf"));
        secret_file(&file, &format!("[client]\npassword=\"{password}\"\n"));
        let mut cmd = self.client_command(&format!("--defaults-file={}", file.display()));
        cmd.args(["-u", user, "-e", sql]);
        let out = run_fed(cmd, b"", BOUND);
        let _ = fs::remove_file(&file);
        out
    }

    /// The client on this server's socket, `-N -B`, with `options` (which
    /// must come first: `--no-defaults` or `--defaults-file`).
    fn client_command(&self, options: &str) -> Command {
        let mut cmd = Command::new(&self.client);
        cmd.arg(options)
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--default-character-set=utf8mb4", "-N", "-B"])
            .env_remove("MYSQL_PWD")
            .env_remove("MYSQL_HOST")
            .env_remove("MYSQL_UNIX_PORT");
        cmd
    }
}
