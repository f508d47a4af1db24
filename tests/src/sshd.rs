//! Throw-away OpenSSH servers for tests, and a fleet of host aliases over
//! them that the system's `ssh` reaches with a client configuration of the
//! test's own (`ssh -F`), never the machine's.
//!
//! [`Sshd::start`] makes a host key and a client key with `ssh-keygen`,
//! authorizes the client key and runs `sshd -D -e -f CONFIG` on 127.0.0.1
//! and a free port, with a configuration that keeps the login shell cheap
//! and quiet (`SetEnv SHLVL=1`: root's `~/.bashrc` is not read), accepts
//! keys under `/tmp` (`StrictModes no`) and many connections at once
//! (`MaxStartups 200`). It is ready when sshd logs `Server listening`.
//! Each connection's sshd and each session's shell call `setsid()`, so a
//! signal to sshd's process group does not reach them: the drop freezes
//! sshd and every descendant (SIGSTOP, until no new one appears) and then
//! kills them all.
//!
//! [`Fleet`] puts host aliases over one or a few sshd and writes the
//! client configuration: each alias has a known_hosts file of its own, so
//! that one alias's entry can be wrong or missing while the others, on the
//! same sshd, are right; aliases to a closed port and with a client key
//! no sshd accepts are added on demand. A multiplexed fleet
//! ([`Fleet::start_multiplexed`]) has its sessions share a ControlMaster
//! per server, stopped with the fleet.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Ready, Server, free_port, require};

/// How long sshd's start or one `ssh-keygen` may take before the test
/// fails.
const BOUND: Duration = Duration::from_secs(30);

/// sshd's privilege separation directory; it refuses to start without it.
const PRIVSEP_DIR: &str = "/run/sshd";

/// A running OpenSSH server on 127.0.0.1; killed with every process it
/// started (connections, sessions, commands) when dropped.
pub struct Sshd {
    server: Server,
    port: u16,
    host_key: String,
    client_key: PathBuf,
}

impl Sshd {
    /// Makes the keys and the configuration in `dir` (created if missing)
    /// and starts sshd on a free port; `None` (outside CI) when sshd or
    /// ssh-keygen is not installed.
    ///
    /// # Panics
    /// When a key cannot be made, or sshd exits or is not listening within
    /// the bound; the panic shows its log.
    pub fn start(dir: &Path) -> Option<Sshd> {
        Sshd::start_with_env(dir, "")
    }

    /// As [`Sshd::start`], with `env` (`NAME=value` words, no quotes)
    /// added to sshd's `SetEnv`, which comes after sshd's own `PATH`: a
    /// session's `PATH` can start with a directory of fake programs.
    pub fn start_with_env(dir: &Path, env: &str) -> Option<Sshd> {
        let sshd = require("sshd", "openssh-server")?;
        let keygen = require("ssh-keygen", "openssh-client")?;
        fs::create_dir_all(dir).expect("create the sshd directory");
        fs::create_dir_all(PRIVSEP_DIR).expect("create sshd's privilege separation directory");
        let host_key = make_key(&keygen, &dir.join("host_key"));
        let client_key = dir.join("client_key");
        let client_public = make_key(&keygen, &client_key);
        fs::write(dir.join("authorized_keys"), format!("{client_public}\n"))
            .expect("write authorized_keys");
        let port = free_port();
        let config = dir.join("sshd_config");
        fs::write(&config, sshd_config(dir, port, env)).expect("write sshd_config");
        let mut cmd = Command::new(sshd);
        cmd.arg("-D").arg("-e").arg("-f").arg(&config);
        let ready = Ready::Log(format!("Server listening on 127.0.0.1 port {port}."));
        let server = Server::start("sshd", cmd, &dir.join("sshd.log"), ready, BOUND);
        Some(Sshd {
            server,
            port,
            host_key,
            client_key,
        })
    }

    /// The port sshd listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The private key sshd accepts (its public half is the one line of
    /// sshd's `authorized_keys`).
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// The host's public key as known_hosts holds it, without a comment:
    /// `ssh-ed25519 AAAA…`.
    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    /// The known_hosts line for this server as ssh writes it for a port
    /// other than 22: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key)
    }

    /// What sshd has logged so far (`LogLevel VERBOSE`, on its stderr).
    pub fn log_text(&self) -> String {
        self.server.log_text()
    }

    /// The listening sshd's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }
}

impl Drop for Sshd {
    /// Kills sshd and its descendants; the [`Server`] then reaps sshd.
    fn drop(&mut self) {
        kill_tree(self.server.pid());
    }
}

/// The test sshd's configuration: loopback, `port`, the keys and files in
/// `dir`, public keys only, no PAM, root by key, and the settings the
/// tests need (see the module's documentation), `env` added to `SetEnv`
/// (sshd takes only the first `SetEnv` line).
fn sshd_config(dir: &Path, port: u16, env: &str) -> String {
    let path = |name: &str| quoted(&dir.join(name));
    format!(
        "# pysk test sshd\n\
         ListenAddress 127.0.0.1\n\
         Port {port}\n\
         HostKey {}\n\
         AuthorizedKeysFile {}\n\
         PidFile {}\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         StrictModes no\n\
         MaxStartups 200\n\
         SetEnv SHLVL=1 {env}\n\
         Subsystem sftp internal-sftp\n\
         LogLevel VERBOSE\n",
        path("host_key"),
        path("authorized_keys"),
        path("sshd.pid"),
    )
}

/// Makes an ed25519 key pair at `path` (`path.pub` the public half) with
/// no passphrase; returns the public key without its comment.
fn make_key(keygen: &Path, path: &Path) -> String {
    let status = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(
        status.success(),
        "ssh-keygen failed ({status}) for {path:?}"
    );
    let public = fs::read_to_string(path.with_extension("pub")).expect("read the public key");
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `path` in double quotes, as sshd_config and ssh_config take a path.
fn quoted(path: &Path) -> String {
    let text = path.to_str().expect("a UTF-8 path");
    assert!(!text.contains(['"', '\n']), "a test path needs no escaping");
    format!("\"{text}\"")
}

/// Process `root` and its descendants (found by parent, from
/// `/proc/<pid>/stat`), `root` first.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(ppid) = parent(pid) {
            all.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let up = tree[i];
        tree.extend(
            all.iter()
                .filter(|(_, ppid)| *ppid == up)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree
}

/// The parent of process `pid`, `None` when it is gone.
fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid …; comm may hold blanks and ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Stops `root` and every descendant (again, until none new appears:
/// a stopped process cannot fork), then kills them all. Stopped first,
/// so that none is reparented out of sight before it is found.
fn kill_tree(root: u32) {
    let mut stopped: Vec<u32> = Vec::new();
    for _ in 0..100 {
        let fresh: Vec<u32> = process_tree(root)
            .into_iter()
            .filter(|pid| !stopped.contains(pid))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            signal(pid, libc::SIGSTOP);
            stopped.push(pid);
        }
    }
    for pid in stopped {
        signal(pid, libc::SIGKILL);
    }
}

/// Sends `sig` to process `pid` (found below our own sshd).
fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on a process of our sshd's tree, positive pid.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Waits up to `bound` until every process of `pids` is gone (exited and
/// reaped); true when they are.
pub fn gone(pids: &[u32], bound: Duration) -> bool {
    let start = Instant::now();
    loop {
        if pids.iter().all(|pid| parent(*pid).is_none()) {
            return true;
        }
        if start.elapsed() > bound {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One alias of the client configuration.
#[derive(Debug, Clone)]
struct Host {
    alias: String,
    port: u16,
    identity: PathBuf,
    known_hosts: PathBuf,
}

/// Host aliases over one or a few [`Sshd`] and the client configuration
/// that reaches them (`ssh -F`); every server stopped on drop.
pub struct Fleet {
    dir: PathBuf,
    ssh: PathBuf,
    keygen: PathBuf,
    servers: Vec<Sshd>,
    hosts: Vec<Host>,
    config: PathBuf,
    user: String,
    /// Sessions share a ControlMaster per server (see
    /// [`Fleet::start_multiplexed`]).
    multiplexed: bool,
}

impl Fleet {
    /// Starts `servers` sshd (at least one) in `dir/sshd<N>` and spreads
    /// `aliases` over them in turn (the first alias on the first server),
    /// each alias's known_hosts holding its server's key; writes the
    /// client configuration `dir/ssh_config`. `None` (outside CI) when
    /// OpenSSH is not installed.
    ///
    /// # Panics
    /// When a server does not start (see [`Sshd::start`]) or an alias is
    /// not a plain name.
    pub fn start(dir: &Path, aliases: &[&str], servers: usize) -> Option<Fleet> {
        assert!(servers > 0, "a fleet needs a server");
        let ssh = require("ssh", "openssh-client")?;
        let keygen = require("ssh-keygen", "openssh-client")?;
        let mut started = Vec::new();
        for n in 0..servers {
            started.push(Sshd::start(&dir.join(format!("sshd{n}")))?);
        }
        fs::create_dir_all(dir.join("known_hosts")).expect("create the known_hosts directory");
        let mut fleet = Fleet {
            dir: dir.to_owned(),
            ssh,
            keygen,
            servers: started,
            hosts: Vec::new(),
            config: dir.join("ssh_config"),
            user: current_user(),
            multiplexed: false,
        };
        for (n, alias) in aliases.iter().enumerate() {
            let server = &fleet.servers[n % servers];
            let (port, identity) = (server.port(), server.client_key().to_owned());
            let line = server.known_hosts_line();
            fleet.add(alias, port, identity, Some(&line));
        }
        Some(fleet)
    }

    /// As [`Fleet::start`], with a client configuration that multiplexes,
    /// as an admin's often does: `ControlMaster auto`, `ControlPath` in
    /// `dir` (one master per server, as every alias of a server has the
    /// same address, port and user), `ControlPersist 60`. The masters are
    /// stopped (`ssh -O exit`) by [`Fleet::stop_masters`] and on drop.
    pub fn start_multiplexed(dir: &Path, aliases: &[&str], servers: usize) -> Option<Fleet> {
        let mut fleet = Fleet::start(dir, aliases, servers)?;
        fleet.multiplexed = true;
        fleet.write_config();
        Some(fleet)
    }

    /// Stops the ControlMaster of every alias that has one; `ssh -O exit`
    /// waits for nothing, so a master is gone once its socket is.
    pub fn stop_masters(&self) {
        if !self.multiplexed {
            return;
        }
        for host in &self.hosts {
            // A failure is an alias without a master (refused, say).
            let _ = self
                .ssh()
                .args(["-O", "exit", &host.alias])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// The ControlMaster sockets in the fleet's directory.
    pub fn master_sockets(&self) -> Vec<PathBuf> {
        let mut sockets: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("cm-"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        sockets.sort();
        sockets
    }

    /// The client configuration for `ssh -F` (and `hv_ssh_options`).
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The switches that make pysk-hv reach this fleet (its ssh
    /// configuration and user) and keep its state in `state`.
    pub fn hv_switches(&self, state: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("hv_ssh_options", format!("-F {}", self.config.display())),
            ("hv_user", self.user.clone()),
            ("hv_state_dir", state.display().to_string()),
        ]
    }

    /// The account every alias logs in as (`User`): the one running the
    /// tests, root in CI.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The servers, in the order aliases were spread over them.
    pub fn servers(&self) -> &[Sshd] {
        &self.servers
    }

    /// The aliases of the client configuration, in the order added.
    pub fn aliases(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.alias.as_str()).collect()
    }

    /// The port `alias` connects to.
    pub fn port(&self, alias: &str) -> u16 {
        self.host(alias).port
    }

    /// The known_hosts file of `alias` (its `UserKnownHostsFile`).
    pub fn known_hosts(&self, alias: &str) -> &Path {
        &self.host(alias).known_hosts
    }

    /// The system's `ssh` with `-F` this fleet's configuration and no
    /// agent (`SSH_AUTH_SOCK` removed): only the configured keys count.
    pub fn ssh(&self) -> Command {
        let mut cmd = Command::new(&self.ssh);
        cmd.arg("-F").arg(&self.config).env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// Replaces `alias`'s known_hosts entry by another key for the same
    /// `[127.0.0.1]:PORT`: the changed host key case.
    pub fn change_host_key(&self, alias: &str) {
        let other = self.key("other_host_key");
        let host = self.host(alias);
        let line = format!("[127.0.0.1]:{} {other}\n", host.port);
        fs::write(&host.known_hosts, line).expect("write a known_hosts file");
    }

    /// Empties `alias`'s known_hosts: the unknown host key case.
    pub fn forget_host_key(&self, alias: &str) {
        fs::write(&self.host(alias).known_hosts, "").expect("empty a known_hosts file");
    }

    /// Adds `alias`, to a server of its own started with `env` added to
    /// its `SetEnv` (see [`Sshd::start_with_env`]); `None` (outside CI)
    /// when OpenSSH is not installed.
    pub fn add_with_env(&mut self, alias: &str, env: &str) -> Option<()> {
        let server = Sshd::start_with_env(&self.dir.join(format!("sshd-{alias}")), env)?;
        let (port, identity) = (server.port(), server.client_key().to_owned());
        let line = server.known_hosts_line();
        self.servers.push(server);
        self.add(alias, port, identity, Some(&line));
        Some(())
    }

    /// Adds `alias`, to a port on 127.0.0.1 where nothing listens (free a
    /// moment ago): the connection refused case.
    pub fn add_closed(&mut self, alias: &str) {
        let identity = self.servers[0].client_key().to_owned();
        self.add(alias, free_port(), identity, None);
    }

    /// Adds `alias`, to the first server with its host key known but a
    /// client key that no server accepts: the refused authentication case.
    pub fn add_wrong_client_key(&mut self, alias: &str) {
        self.key("other_client_key");
        let identity = self.dir.join("other_client_key");
        let server = &self.servers[0];
        let (port, line) = (server.port(), server.known_hosts_line());
        self.add(alias, port, identity, Some(&line));
    }

    fn host(&self, alias: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.alias == alias)
            .unwrap_or_else(|| panic!("no alias {alias} in the fleet"))
    }

    /// Adds an alias with its known_hosts file (holding `known`, if any)
    /// and rewrites the client configuration.
    fn add(&mut self, alias: &str, port: u16, identity: PathBuf, known: Option<&str>) {
        assert!(
            !alias.is_empty()
                && alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "an alias is a plain name: {alias:?}"
        );
        assert!(
            self.hosts.iter().all(|h| h.alias != alias),
            "alias {alias} twice"
        );
        let known_hosts = self.dir.join("known_hosts").join(alias);
        let text = known.map(|line| format!("{line}\n")).unwrap_or_default();
        fs::write(&known_hosts, text).expect("write a known_hosts file");
        self.hosts.push(Host {
            alias: alias.to_owned(),
            port,
            identity,
            known_hosts,
        });
        self.write_config();
    }

    fn write_config(&self) {
        let mux = self.multiplexed.then(|| self.dir.join("cm-%C"));
        fs::write(
            &self.config,
            client_config(&self.hosts, &self.user, mux.as_deref()),
        )
        .expect("write the client configuration");
    }

    /// The public half of the extra key `name` in the fleet's directory,
    /// made on first use.
    fn key(&self, name: &str) -> String {
        let path = self.dir.join(name);
        if let Ok(public) = fs::read_to_string(path.with_extension("pub")) {
            return public
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
        }
        make_key(&self.keygen, &path)
    }
}

impl Drop for Fleet {
    /// Stops the ControlMasters (before the servers go, with the fields).
    fn drop(&mut self) {
        self.stop_masters();
    }
}

/// The `ssh -F` file: one block per alias, then what every alias shares,
/// multiplexed through `control_path` when given. ssh takes the first
/// value it reads for an option, so the aliases' blocks come first;
/// options given with `-o` still win over both.
fn client_config(hosts: &[Host], user: &str, control_path: Option<&Path>) -> String {
    let mut text = String::from("# pysk test client configuration\n");
    for h in hosts {
        text.push_str(&format!(
            "Host {}\n    HostName 127.0.0.1\n    Port {}\n    IdentityFile {}\n    \
             UserKnownHostsFile {}\n\n",
            h.alias,
            h.port,
            quoted(&h.identity),
            quoted(&h.known_hosts),
        ));
    }
    let mux = match control_path {
        Some(path) => format!(
            "ControlMaster auto\n    ControlPath {}\n    ControlPersist 60\n",
            quoted(path)
        ),
        None => "ControlMaster no\n    ControlPath none\n".to_owned(),
    };
    text.push_str(&format!(
        "Host *\n    User {user}\n    IdentitiesOnly yes\n    GlobalKnownHostsFile /dev/null\n    \
         BatchMode yes\n    StrictHostKeyChecking yes\n    HashKnownHosts no\n    \
         UpdateHostKeys no\n    CheckHostIP no\n    {mux}    ConnectTimeout 10\n"
    ));
    text
}

/// The name of the account running the tests.
fn current_user() -> String {
    // SAFETY: getpwuid(3) for our own uid; the record is read at once,
    // before any other call could reuse its static storage.
    let pw = unsafe { libc::getpwuid(libc::getuid()) };
    assert!(
        !pw.is_null(),
        "the account running the tests has a passwd entry"
    );
    // SAFETY: non-null, as checked; pw_name is a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) };
    name.to_str().expect("a UTF-8 account name").to_owned()
}
