//! The harness the end-to-end tests share.
//!
//! End-to-end tests drive the built binaries (`target/<profile>/pysk-*`)
//! against the real programs they talk to, each in a scratch directory, on
//! loopback and free ports. This crate holds the few things they all need:
//! locating a binary, a scratch root, a free port, a server process that is
//! started, waited for within a bound and killed on drop, and [`require`],
//! which fails a test under `CI=true` when a program it needs is missing.
//! Every test runs a tool through [`tool`] ([`cmd`]).

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

pub use cmd::{TestCommand, assert_stderr, assert_stderr_is, code, stderr, stdout, tool};

pub mod backup;
pub mod bind;
pub mod cmd;
pub mod dns;
pub mod dovecot;
pub mod http;
pub mod mariadb;
pub mod pg;
pub mod sshd;
pub mod tls;
pub mod tmpfs;

/// The path of the built binary `name` (for example `pysk-logs`), from the
/// same target directory as the running test.
///
/// # Panics
/// When the binary has not been built; `cargo build --workspace` builds it
/// (`scripts/test` does that before running tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// The repository's `examples/` directory: the committed sample data.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A self-signed server certificate for `localhost` and 127.0.0.1, made
/// by OpenSSL as `dir/cert.pem` and `dir/key.pem`; clients trust
/// `cert.pem` itself. `None` (outside CI) when OpenSSL is missing.
pub fn test_certificate(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let openssl = require("openssl", "openssl")?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        // A server certificate that is its own trust anchor, not a CA.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl made no test certificate");
    Some((cert, key))
}

/// Copies every file of directory `from` into `to` (created if missing).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read the directory to copy") {
        let entry = entry.expect("directory entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a file");
        }
    }
}

/// The names in `dir` (not below it), sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The files below `dir`, recursively, as paths relative to it, sorted:
/// what a spool holds after a run, to compare exactly.
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("below").display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Configures AWStats for `vhost` in `dir/conf` (data in `dir/data`) to
/// read `log_file` (a file or a `command |` pipe) with `extra` lines of
/// configuration, runs `awstats.pl -update` and returns its output and the
/// data directory. The environment holds no pysk switches.
pub fn awstats_update(
    awstats: &Path,
    dir: &Path,
    vhost: &str,
    log_file: &str,
    extra: &str,
) -> (std::process::Output, PathBuf) {
    let conf = dir.join("conf");
    let data = dir.join("data");
    std::fs::create_dir_all(&conf).expect("create the AWStats config directory");
    std::fs::create_dir_all(&data).expect("create the AWStats data directory");
    std::fs::write(
        conf.join(format!("awstats.{vhost}.conf")),
        format!(
            "LogFile=\"{log_file}\"\nLogType=W\nLogFormat=1\nSiteDomain=\"{vhost}\"\n\
             HostAliases=\"{vhost}\"\nDirData=\"{}\"\n{extra}",
            data.display()
        ),
    )
    .expect("write the AWStats config");
    let out = Command::new("perl")
        .arg(awstats)
        .arg(format!("-config={vhost}"))
        .arg(format!("-configdir={}", conf.display()))
        .arg("-update")
        .env("PYSK_CONFIG_DIR", "/nonexistent")
        .output()
        .expect("run awstats.pl");
    (out, data)
}

/// An AWStats database file (`awstats<MMYYYY>.<vhost>.txt`), as a test
/// reads it.
#[derive(Debug, Clone)]
pub struct AwstatsDb {
    /// The whole file.
    pub text: String,
}

impl AwstatsDb {
    /// Reads the database of `vhost` for `month` (`MMYYYY`) in `data`.
    pub fn load(data: &Path, month: &str, vhost: &str) -> AwstatsDb {
        let path = data.join(format!("awstats{month}.{vhost}.txt"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("AWStats database {}: {e}", path.display()));
        AwstatsDb { text }
    }

    /// `LastLine`: the time of the last line AWStats read
    /// (`YYYYMMDDhhmmss`) and how many lines it read.
    pub fn last_line(&self) -> (String, u64) {
        let fields: Vec<&str> = self
            .text
            .lines()
            .find(|l| l.starts_with("LastLine "))
            .expect("LastLine in the AWStats database")
            .split(' ')
            .collect();
        (
            fields[1].to_owned(),
            fields[2].parse().expect("a line count"),
        )
    }

    /// The hosts of the `VISITOR` section: names where AWStats had one.
    pub fn visitors(&self) -> Vec<&str> {
        self.text
            .lines()
            .skip_while(|l| !l.starts_with("BEGIN_VISITOR "))
            .skip(1)
            .take_while(|l| *l != "END_VISITOR")
            .map(|l| l.split(' ').next().unwrap_or_default())
            .collect()
    }
}

/// Writes `<config_dir>/serverconfig/default` holding `switches` as
/// `key="value"` lines: how tests drive a tool through its switches.
pub fn write_switches(config_dir: &Path, switches: &[(&str, String)]) {
    let mut text = String::new();
    for (key, value) in switches {
        assert!(
            !value.contains(['"', '\\', '$', '`', '\n']),
            "{key}: a test switch needs no quoting: {value:?}"
        );
        text.push_str(&format!("{key}=\"{value}\"\n"));
    }
    let dir = config_dir.join("serverconfig");
    std::fs::create_dir_all(&dir).expect("create serverconfig/");
    std::fs::write(dir.join("default"), text).expect("write serverconfig/default");
}

/// The account files the pysk-passwd tests copy from this machine's
/// `/etc`: what a sync reads and what `pwck` and `grpck` judge.
pub const ACCOUNT_FILES: [&str; 6] = [
    "passwd",
    "group",
    "shadow",
    "gshadow",
    "shells",
    "login.defs",
];

/// Copies the [`ACCOUNT_FILES`] of `from` into `to`, owners kept (modes
/// come with the copy).
pub fn copy_account_files(from: &Path, to: &Path) {
    use std::os::unix::fs::MetadataExt;
    for name in ACCOUNT_FILES {
        let (src, dst) = (from.join(name), to.join(name));
        std::fs::copy(&src, &dst).expect("copy an account file");
        let meta = std::fs::metadata(&src).expect("stat an account file");
        std::os::unix::fs::chown(&dst, Some(meta.uid()), Some(meta.gid())).expect("chown");
    }
}

/// Puts an executable stand-in at each of `programs` (paths relative to
/// `root`, such as `bin/bash`), so that the shells a user database names
/// exist below a test's root.
pub fn stand_in_programs(root: &Path, programs: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    for program in programs {
        let path = root.join(program);
        std::fs::create_dir_all(path.parent().expect("a program's directory"))
            .expect("make a program's directory");
        std::fs::write(&path, "#!/bin/sh\n").expect("write a stand-in program");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod a stand-in program");
    }
}

/// Writes a secret file that only its owner may read, as the tools demand.
pub fn secret_file(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).expect("write the secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the secret file");
}

/// A fresh scratch directory, removed when dropped.
pub fn scratch() -> TempDir {
    tempfile::Builder::new()
        .prefix("pysk-test-")
        .tempdir()
        .expect("create a scratch directory")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on loopback")
}

/// A UDP and TCP port pair number on 127.0.0.1 that was free a moment ago
/// on both protocols (for DNS servers).
pub fn free_port_udp_tcp() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp on loopback");
        let port = udp.local_addr().expect("udp address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Finds `program` on `PATH` (and in the sbin directories, where Debian puts
/// daemons). When it is missing, under `CI=true` the test fails naming the
/// Debian package to install; elsewhere it says loudly that the test is
/// skipped and returns `None`.
pub fn require(program: &str, package: &str) -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    require_in(program, package, ci)
}

/// [`require`] with the CI decision made by the caller.
pub fn require_in(program: &str, package: &str, ci: bool) -> Option<PathBuf> {
    if let Some(path) = which(program) {
        return Some(path);
    }
    let msg = format!(
        "required program {program} is missing: install the Debian package {package} \
         (scripts/install-test-deps does)"
    );
    assert!(!ci, "{msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

/// The full path of `program` on `PATH`, `/usr/sbin` or `/sbin`.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// When a started server counts as ready.
#[derive(Debug, Clone)]
pub enum Ready {
    /// It accepts TCP connections on this address.
    Tcp(SocketAddr),
    /// This file exists (a pid file or socket it creates).
    File(PathBuf),
    /// Its log holds this text (a line the server writes once it serves,
    /// such as sshd's `Server listening on …`).
    Log(String),
}

/// A server process started by a test in its own process group; the whole
/// group is terminated when this is dropped.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` with stdout and stderr going to `log`, and waits up
    /// to `timeout` until it is [`Ready`].
    ///
    /// # Panics
    /// When it cannot start, exits early or is not ready in time; the panic
    /// shows its log.
    pub fn start(
        name: &str,
        mut command: Command,
        log: &Path,
        ready: Ready,
        timeout: Duration,
    ) -> Server {
        let out = File::create(log).expect("create the server log");
        let err = out.try_clone().expect("clone the log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut server = Server {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        };
        server.wait_ready(&ready, timeout);
        server
    }

    fn wait_ready(&mut self, ready: &Ready, timeout: Duration) {
        let start = Instant::now();
        loop {
            let is_ready = match ready {
                Ready::Tcp(addr) => {
                    TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok()
                }
                Ready::File(path) => path.exists(),
                Ready::Log(text) => self.log_text().contains(text.as_str()),
            };
            if is_ready {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited early with {status}; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} was not ready within {timeout:?}; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// What the server has written to its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Ok(pgid) = i32::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) on our own child's process group.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                // SAFETY: as above; reaps stragglers the leader left.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
