//! A Dovecot IMAP server for tests: a passwd-file user, a maildir and a
//! self-signed certificate in a scratch directory, IMAP (with STARTTLS,
//! or plain only) and IMAPS on free loopback ports.

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

/// A running Dovecot; stopped when dropped.
pub struct Dovecot {
    _server: Server,
    /// The IMAP port (STARTTLS offered when started with TLS).
    pub imap_port: u16,
    /// The IMAPS port (0 when started without TLS).
    pub imaps_port: u16,
    /// The certificate clients should trust (PEM).
    pub ca_file: PathBuf,
}

impl Dovecot {
    /// Starts Dovecot under `dir`; `None` (outside CI) when Dovecot or
    /// OpenSSL are not installed.
    pub fn start(dir: &Path, tls: bool) -> Option<Dovecot> {
        let dovecot = require("dovecot", "dovecot-imapd")?;
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
        let (cert, _key) = test_certificate(dir)?;
        fs::write(dir.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).expect("passwd");
        let (imap_port, imaps_port) = (free_port(), if tls { free_port() } else { 0 });
        let d = dir.display();
        let tls_conf = if tls {
            format!(
                "ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n\
                 service imap-login {{\n  inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n"
            )
        } else {
            "ssl = no\n".to_owned()
        };
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\ninfo_log_path = {d}/dovecot.log\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\nfirst_valid_uid = 1\n\
             mail_location = maildir:{d}/mail/%u\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={d}/mail/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {imap_port}\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n{tls_conf}"
        );
        fs::write(dir.join("dovecot.conf"), conf).expect("dovecot.conf");
        let mut cmd = Command::new(dovecot);
        cmd.arg("-F").arg("-c").arg(dir.join("dovecot.conf"));
        let addr: SocketAddr = ([127, 0, 0, 1], imap_port).into();
        let server = Server::start(
            "dovecot",
            cmd,
            &dir.join("dovecot.out"),
            Ready::Tcp(addr),
            Duration::from_secs(20),
        );
        Some(Dovecot {
            _server: server,
            imap_port,
            imaps_port,
            ca_file: cert,
        })
    }
}
