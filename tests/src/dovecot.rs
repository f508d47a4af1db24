//! A Dovecot mail server for tests: a passwd-file user, a maildir and a
//! certificate in a scratch directory, on free loopback ports. Either IMAP
//! (with STARTTLS, or plain only) and IMAPS with a self-signed certificate
//! ([`Dovecot::start`]), or IMAP and POP3, each with STARTTLS and over TLS,
//! serving a given certificate and key file that a reload reads again
//! ([`Dovecot::serving`]).

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Ready, Server, free_port, require, test_certificate};

/// The test user and its password.
pub const USER: &str = "logs";
/// The test user's password.
pub const PASSWORD: &str = "s3cret-imap";

/// The greeting of a Dovecot started by [`Dovecot::serving`], sent by its
/// IMAP (after `* OK [CAPABILITY ...] `) and POP3 (after `+OK `) listeners.
pub const GREETING: &str = "pysk test Dovecot ready.";

/// A running Dovecot; stopped when dropped.
pub struct Dovecot {
    _server: Server,
    /// The IMAP port (STARTTLS offered when started with TLS).
    pub imap_port: u16,
    /// The IMAPS port (0 when started without TLS).
    pub imaps_port: u16,
    /// The POP3 port, STLS offered (0 unless started by
    /// [`Dovecot::serving`]).
    pub pop3_port: u16,
    /// The POP3S port (0 unless started by [`Dovecot::serving`]).
    pub pop3s_port: u16,
    /// The certificate clients should trust (PEM): the self-signed one of
    /// [`Dovecot::start`], or the certificate file [`Dovecot::serving`]
    /// was given.
    pub ca_file: PathBuf,
    /// Its configuration file.
    pub conf: PathBuf,
    doveadm: PathBuf,
    log: PathBuf,
}

/// The certificate and key files Dovecot reads (`ssl_cert = <FILE`,
/// `ssl_key = <FILE`).
struct Tls<'a> {
    cert: &'a Path,
    key: &'a Path,
}

/// The listeners of one Dovecot (0: none).
struct Ports {
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
}

impl Dovecot {
    /// Starts Dovecot under `dir`; `None` (outside CI) when Dovecot or
    /// OpenSSL are not installed.
    pub fn start(dir: &Path, tls: bool) -> Option<Dovecot> {
        let (dovecot, doveadm) = programs()?;
        prepare(dir);
        let (cert, key) = test_certificate(dir)?;
        let ports = Ports {
            imap: free_port(),
            imaps: if tls { free_port() } else { 0 },
            pop3: 0,
            pop3s: 0,
        };
        let files = Tls {
            cert: &cert,
            key: &key,
        };
        let conf = config(dir, &ports, tls.then_some(&files), "");
        Some(launch(&dovecot, doveadm, dir, &conf, ports, cert.clone()))
    }

    /// Starts Dovecot under `dir` serving `cert` (PEM: the leaf, then its
    /// chain) with `key`, which it reads at its start and again at each
    /// reload ([`Dovecot::reload_command`]): IMAP offering STARTTLS, IMAPS,
    /// POP3 offering STLS and POP3S, greeting with [`GREETING`]. `None`
    /// (outside CI) when Dovecot's IMAP or POP3 server is not installed.
    pub fn serving(dir: &Path, cert: &Path, key: &Path) -> Option<Dovecot> {
        let (dovecot, doveadm) = programs()?;
        require("/usr/lib/dovecot/pop3-login", "dovecot-pop3d")?;
        prepare(dir);
        let ports = Ports {
            imap: free_port(),
            imaps: free_port(),
            pop3: free_port(),
            pop3s: free_port(),
        };
        let extra = format!(
            "login_greeting = {GREETING}\n\
             service pop3-login {{\n  chroot =\n  inet_listener pop3 {{\n    port = {}\n  }}\n  \
             inet_listener pop3s {{\n    port = {}\n    ssl = yes\n  }}\n}}\n",
            ports.pop3, ports.pop3s
        );
        let conf = config(dir, &ports, Some(&Tls { cert, key }), &extra);
        Some(launch(
            &dovecot,
            doveadm,
            dir,
            &conf,
            ports,
            cert.to_path_buf(),
        ))
    }

    /// `doveadm -c CONF reload`: the command (no blanks in it, fit for
    /// `ssl_reload_command`) that makes this Dovecot read its
    /// configuration, and the files it includes, again.
    pub fn reload_command(&self) -> String {
        format!(
            "{} -c {} reload",
            self.doveadm.display(),
            self.conf.display()
        )
    }

    /// What Dovecot has logged so far (`log_path`).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Dovecot and doveadm, or `None` (outside CI) when missing.
fn programs() -> Option<(PathBuf, PathBuf)> {
    let dovecot = require("dovecot", "dovecot-imapd")?;
    let doveadm = require("doveadm", "dovecot-core")?;
    Some((dovecot, doveadm))
}

/// The directories Dovecot uses below `dir` and the user's password file.
fn prepare(dir: &Path) {
    // Dovecot runs the mail process as an unprivileged user, which must
    // reach the maildir.
    let mut p = dir.to_path_buf();
    while p.parent().is_some() && p != Path::new("/tmp") && p != Path::new("/") {
        let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o755));
        p.pop();
    }
    for sub in ["run", "state", "mail"] {
        fs::create_dir_all(dir.join(sub)).expect("dovecot directories");
    }
    let status = Command::new("chown")
        .args(["65534:65534"])
        .arg(dir.join("mail"))
        .status()
        .expect("chown");
    assert!(status.success(), "chown the maildir to nobody");
    fs::write(dir.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).expect("passwd");
}

/// Dovecot's configuration: IMAP on `ports.imap`, with `tls` IMAPS too,
/// and `extra` (the POP3 listeners) at the end.
fn config(dir: &Path, ports: &Ports, tls: Option<&Tls<'_>>, extra: &str) -> String {
    let d = dir.display();
    let (imap_port, imaps_port) = (ports.imap, ports.imaps);
    let tls_conf = match tls {
        Some(files) => format!(
            "ssl = yes\nssl_cert = <{}\nssl_key = <{}\n\
             service imap-login {{\n  inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n",
            files.cert.display(),
            files.key.display()
        ),
        None => "ssl = no\n".to_owned(),
    };
    let protocols = if ports.pop3 == 0 { "imap" } else { "imap pop3" };
    format!(
        "protocols = {protocols}\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
         log_path = {d}/dovecot.log\ninfo_log_path = {d}/dovecot.log\n\
         disable_plaintext_auth = no\nauth_mechanisms = plain login\nfirst_valid_uid = 1\n\
         mail_location = maildir:{d}/mail/%u\n\
         passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={d}/mail/%u\n}}\n\
         service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {imap_port}\n  }}\n}}\n\
         service anvil {{\n  chroot =\n}}\n{tls_conf}{extra}"
    )
}

/// Writes `conf` as `dir/dovecot.conf` and runs Dovecot in the foreground
/// until it accepts IMAP connections.
fn launch(
    dovecot: &Path,
    doveadm: PathBuf,
    dir: &Path,
    conf: &str,
    ports: Ports,
    ca_file: PathBuf,
) -> Dovecot {
    let conf_path = dir.join("dovecot.conf");
    fs::write(&conf_path, conf).expect("dovecot.conf");
    let mut cmd = Command::new(dovecot);
    cmd.arg("-F").arg("-c").arg(&conf_path);
    let addr: SocketAddr = ([127, 0, 0, 1], ports.imap).into();
    let server = Server::start(
        "dovecot",
        cmd,
        &dir.join("dovecot.out"),
        Ready::Tcp(addr),
        Duration::from_secs(20),
    );
    Dovecot {
        _server: server,
        imap_port: ports.imap,
        imaps_port: ports.imaps,
        pop3_port: ports.pop3,
        pop3s_port: ports.pop3s,
        ca_file,
        conf: conf_path,
        doveadm,
        log: dir.join("dovecot.log"),
    }
}
