//! BIND's `named` for tests: authoritative only, on a free loopback port,
//! loading the zones of a `named.conf` include, in a scratch directory.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Ready, Server, free_port_udp_tcp, require};

/// A running `named`; stopped when dropped.
pub struct Named {
    server: Server,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    /// Its configuration file.
    pub conf: PathBuf,
}

impl Named {
    /// Starts `named` under `dir` with `include` included in its
    /// configuration; `None` (outside CI) when BIND is not installed.
    pub fn start(dir: &Path, include: &Path) -> Option<Named> {
        let named = require("named", "bind9")?;
        let port = free_port_udp_tcp();
        let d = dir.display();
        fs::create_dir_all(dir).expect("create named's directory");
        let conf = dir.join("named.conf");
        fs::write(
            &conf,
            format!(
                "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  \
                 listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
                 recursion no;\n  dnssec-validation no;\n}};\ncontrols {{ }};\n\
                 include \"{}\";\n",
                include.display()
            ),
        )
        .expect("write named.conf");
        let mut cmd = Command::new(named);
        cmd.arg("-g").arg("-c").arg(&conf);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let server = Server::start(
            "named",
            cmd,
            &dir.join("named.log"),
            Ready::Tcp(addr),
            Duration::from_secs(20),
        );
        Some(Named { server, addr, conf })
    }

    /// Its process id, for `kill -HUP` as a reload command.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// What it has logged.
    pub fn log_text(&self) -> String {
        self.server.log_text()
    }

    /// The answers `dig` gets for `name` and `rtype`, one a line, as
    /// `+short` prints them, sorted.
    pub fn query(&self, name: &str, rtype: &str) -> Vec<String> {
        let dig = require("dig", "bind9-dnsutils").expect("dig is installed with named");
        let out = Command::new(dig)
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string()])
            .args(["+norec", "+short", "+time=2", "+tries=2", name, rtype])
            .output()
            .expect("run dig");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    /// Waits until it answers for every one of `zones`: `named` listens
    /// before it has loaded them, so a query at once may find no zone yet.
    pub fn serving(&self, zones: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for zone in zones {
            while self.query(zone, "SOA").is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "named never served {zone}: {}",
                    self.log_text()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Asserts that BIND's own `named-checkzone` loads `file` as `zone`,
/// treating what it would only warn about as failures.
pub fn check_zone(zone: &str, file: &Path) {
    let checkzone = require("named-checkzone", "bind9-utils").expect("named-checkzone");
    let out = Command::new(checkzone)
        .args(["-k", "fail", "-n", "fail", zone])
        .arg(file)
        .output()
        .expect("named-checkzone");
    assert!(
        out.status.success(),
        "named-checkzone {zone}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that `named-checkconf -z` loads the configuration `conf` and
/// every zone it names.
pub fn check_conf(conf: &Path) {
    let checkconf = require("named-checkconf", "bind9-utils").expect("named-checkconf");
    let out = Command::new(checkconf)
        .arg("-z")
        .arg(conf)
        .output()
        .expect("named-checkconf");
    assert!(
        out.status.success(),
        "named-checkconf: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
