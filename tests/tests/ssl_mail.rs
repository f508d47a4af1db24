//! End-to-end tests of `pysk-ssl served --starttls imap|pop3` and of
//! `install`'s reload and probe against a real Dovecot serving the
//! `NAME_combined.crt` and `NAME.key` that pysk-ssl installed: the
//! certificates come from a test CA (root, intermediate, leaves signed over
//! the CSRs pysk-ssl made), a renewal installed without a reload is caught
//! on IMAP and POP3, with STARTTLS and over TLS, `doveadm reload` as
//! `ssl_reload_command` makes Dovecot serve the new certificate and the
//! install's own probe confirms it, and a STARTTLS of the wrong protocol is
//! a clear error within the timeout. What Dovecot serves is also read by
//! `openssl s_client`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use pysk_tests::dovecot::{Dovecot, GREETING};
use pysk_tests::tls::{
    Intermediate, Issued, StartTls, TestCa, Validity, openssl, run_bounded, s_client,
};
use pysk_tests::{TempDir, TestCommand, scratch, stderr, tool, write_switches};

const NAME: &str = "mail.example.test";

/// What Dovecot's master logs when `doveadm reload` reaches it.
const RELOADED: &str = "master: Warning: SIGHUP received - reloading configuration";

/// The `--timeout` of every probe.
const TIMEOUT: &str = "2";

/// A scratch directory with the test CA's root in `root.pem`, switches
/// pointing the tool at `ssl/`, and the intermediate that signs.
struct Env {
    dir: TempDir,
    inter: Intermediate,
    openssl: PathBuf,
}

impl Env {
    fn new() -> Option<Env> {
        let openssl = openssl()?;
        let dir = scratch();
        let ca = TestCa::new();
        ca.write_root(&dir.path().join("root.pem"));
        let inter = ca.intermediate(Validity::CA);
        let env = Env {
            dir,
            inter,
            openssl,
        };
        env.switches(&[]);
        Some(env)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ssl(&self, file: &str) -> PathBuf {
        self.path("ssl").join(file)
    }

    /// The switches `ssl_dir` and `ssl_key_group`, then `more`.
    fn switches(&self, more: &[(&str, String)]) {
        let mut all = vec![
            ("ssl_dir", self.path("ssl").display().to_string()),
            ("ssl_key_group", "nogroup".to_owned()),
        ];
        all.extend(more.iter().cloned());
        write_switches(self.dir.path(), &all);
    }

    fn tool(&self) -> TestCommand {
        tool("pysk-ssl").config_dir(self.dir.path())
    }

    /// `csr NAME` (a new pending key), the CSR signed by the intermediate,
    /// valid until `days` from now.
    fn issue(&self, days: i64) -> Issued {
        self.tool().args(["csr", NAME]).succeeds();
        let csr = std::fs::read_to_string(self.ssl(&format!("{NAME}.csr"))).expect("the CSR");
        self.inter.sign_csr(&csr, Validity::days(-1, days))
    }

    /// `install NAME --cert --chain --ca-file root.pem` of `issued`,
    /// written below `label/`.
    fn install(&self, issued: &Issued, label: &str) -> TestCommand {
        let files = issued.write(&self.path(label), NAME);
        self.tool()
            .args(["install", NAME, "--cert"])
            .arg(&files.cert)
            .arg("--chain")
            .arg(&files.chain)
            .arg("--ca-file")
            .arg(self.path("root.pem"))
    }

    /// The line `install` reports for `issued`.
    fn installed_line(&self, issued: &Issued) -> String {
        format!(
            "pysk-ssl: {NAME}: installed in {} (leaf \"CN={NAME}\", expires {}, 1 intermediate(s))\n",
            self.path("ssl").display(),
            self.not_after(&issued.cert)
        )
    }

    /// `served PORT... --name NAME` on loopback, with `--starttls` when
    /// given, trusting the test root.
    fn served(&self, ports: &[u16], starttls: Option<&str>) -> TestCommand {
        let mut cmd = self.tool().arg("served");
        for port in ports {
            cmd = cmd.arg(format!("127.0.0.1:{port}"));
        }
        if let Some(protocol) = starttls {
            cmd = cmd.args(["--starttls", protocol]);
        }
        cmd.args(["--name", NAME, "--timeout", TIMEOUT, "--ca-file"])
            .arg(self.path("root.pem"))
    }

    /// `openssl x509` on the PEM `cert`: its not-after day
    /// (`YYYY-MM-DD`), read independently of the tool.
    fn not_after(&self, cert: &str) -> String {
        let out = self.x509(cert, &["-enddate", "-dateopt", "iso_8601"]);
        out.strip_prefix("notAfter=")
            .and_then(|rest| rest.get(..10))
            .unwrap_or_else(|| panic!("openssl's notAfter: {out:?}"))
            .to_owned()
    }

    /// `openssl x509` on the PEM `cert`: its subject, RFC 2253.
    fn subject(&self, cert: &str) -> String {
        let out = self.x509(cert, &["-subject", "-nameopt", "RFC2253"]);
        out.strip_prefix("subject=")
            .unwrap_or_else(|| panic!("openssl's subject: {out:?}"))
            .trim_end()
            .to_owned()
    }

    fn x509(&self, cert: &str, args: &[&str]) -> String {
        let file = self.path("x509-input.pem");
        std::fs::write(&file, cert).expect("write a certificate for openssl");
        let mut cmd = Command::new(&self.openssl);
        cmd.args(["x509", "-noout", "-in"]).arg(&file).args(args);
        let out = run_bounded(cmd, Duration::from_secs(20));
        assert!(out.status.success(), "openssl x509 {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What `openssl s_client` (trusting only the test root, checking the
    /// name) is served on `port`: the chain, which must verify.
    fn s_client(&self, port: u16, starttls: Option<StartTls>) -> Vec<String> {
        let seen = s_client(
            &self.openssl,
            ([127, 0, 0, 1], port).into(),
            NAME,
            &self.path("root.pem"),
            starttls,
        );
        assert!(seen.verified, "{}", seen.output);
        seen.chain
    }
}

/// The endpoints of one Dovecot, each with the `--starttls` it needs.
fn endpoints(dovecot: &Dovecot) -> [(u16, Option<&'static str>); 4] {
    [
        (dovecot.imap_port, Some("imap")),
        (dovecot.pop3_port, Some("pop3")),
        (dovecot.imaps_port, None),
        (dovecot.pop3s_port, None),
    ]
}

/// The same, as `openssl s_client -starttls` names the protocols.
fn s_client_protocol(starttls: Option<&str>) -> Option<StartTls> {
    match starttls {
        Some("imap") => Some(StartTls::Imap),
        Some("pop3") => Some(StartTls::Pop3),
        _ => None,
    }
}

/// `served` of every endpoint of `dovecot` exits 0 and says it serves the
/// installed NAME, and `openssl s_client` is served `issued`.
fn all_serve(env: &Env, dovecot: &Dovecot, issued: &Issued) {
    for (port, starttls) in endpoints(dovecot) {
        let out = env.served(&[port], starttls).succeeds();
        assert_eq!(
            stderr(&out),
            format!("pysk-ssl: 127.0.0.1:{port} ({NAME}): serves the installed {NAME}\n"),
            "{starttls:?}"
        );
        assert_eq!(
            env.s_client(port, s_client_protocol(starttls)),
            vec![issued.cert.clone(), issued.chain.clone()],
            "port {port}, {starttls:?}"
        );
    }
}

#[test]
fn served_and_install_follow_dovecot_through_a_renewal_and_its_reload() {
    let Some(env) = Env::new() else { return };
    let ssl_dir = env.path("ssl").display().to_string();
    let inter_subject = env.subject(env.inter.pem());

    // 1. Set A installed, and Dovecot started on the files pysk-ssl made.
    let a = env.issue(60);
    let out = env.install(&a, "a").succeeds();
    assert_eq!(stderr(&out), env.installed_line(&a));
    let Some(dovecot) = Dovecot::serving(
        &env.path("dovecot"),
        &env.ssl(&format!("{NAME}_combined.crt")),
        &env.ssl(&format!("{NAME}.key")),
    ) else {
        return;
    };
    all_serve(&env, &dovecot, &a);
    // Both TLS ports in one run: a line each, in the order given.
    let (imaps, pop3s) = (dovecot.imaps_port, dovecot.pop3s_port);
    let out = env.served(&[imaps, pop3s], None).succeeds();
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-ssl: 127.0.0.1:{imaps} ({NAME}): serves the installed {NAME}\n\
             pysk-ssl: 127.0.0.1:{pop3s} ({NAME}): serves the installed {NAME}\n"
        )
    );
    let imap = dovecot.imap_port;
    let out = env.served(&[imap], Some("imap")).arg("--json").succeeds();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("served --json");
    assert_eq!(
        doc,
        json!({
            "endpoints": [{
                "endpoint": format!("127.0.0.1:{imap}"),
                "sni": NAME,
                "name": NAME,
                "served": [format!("CN={NAME}"), inter_subject.clone()],
                "expires": env.not_after(&a.cert),
                "installed": true,
                "problems": [],
            }],
            "attention": 0,
            "version": 1,
        })
    );

    // 2. Set B, expiring later, installed with a reload command that does
    // not reload Dovecot: the install's probe and every endpoint see A.
    let b = env.issue(80);
    env.switches(&[
        ("ssl_reload_command", "true".to_owned()),
        ("ssl_check_after_reload", format!("127.0.0.1:{imaps}")),
        ("ssl_timeout", TIMEOUT.to_owned()),
    ]);
    let stale = format!(
        "renewed but not reloaded: serves a certificate expiring {}, {ssl_dir}/{NAME}.crt expires {}",
        env.not_after(&a.cert),
        env.not_after(&b.cert)
    );
    let out = env.install(&b, "b").fails_with(1);
    assert_eq!(
        stderr(&out),
        format!(
            "{}pysk-ssl: 127.0.0.1:{imaps} ({NAME}): {stale}\n",
            env.installed_line(&b)
        )
    );
    for (port, starttls) in endpoints(&dovecot) {
        let out = env.served(&[port], starttls).fails_with(1);
        assert_eq!(
            stderr(&out),
            format!("pysk-ssl: 127.0.0.1:{port} ({NAME}): {stale}\n"),
            "{starttls:?}"
        );
        assert_eq!(
            env.s_client(port, s_client_protocol(starttls)),
            vec![a.cert.clone(), a.chain.clone()],
            "port {port}, {starttls:?}: Dovecot still serves A"
        );
    }
    let pop3 = dovecot.pop3_port;
    let out = env
        .served(&[pop3], Some("pop3"))
        .arg("--json")
        .fails_with(1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("served --json");
    assert_eq!(
        doc,
        json!({
            "endpoints": [{
                "endpoint": format!("127.0.0.1:{pop3}"),
                "sni": NAME,
                "name": NAME,
                "served": [format!("CN={NAME}"), inter_subject],
                "expires": env.not_after(&a.cert),
                "installed": false,
                "problems": [stale],
            }],
            "attention": 1,
            "version": 1,
        })
    );
    assert_eq!(dovecot.log_text().matches(RELOADED).count(), 0);

    // 3. Set C installed with `doveadm reload` as the reload command: the
    // install's probe of IMAPS confirms C, and every endpoint serves it.
    let c = env.issue(85);
    env.switches(&[
        ("ssl_reload_command", dovecot.reload_command()),
        ("ssl_check_after_reload", format!("127.0.0.1:{imaps}")),
        ("ssl_timeout", TIMEOUT.to_owned()),
    ]);
    let out = env.install(&c, "c").succeeds();
    assert_eq!(
        stderr(&out),
        format!(
            "{}pysk-ssl: 127.0.0.1:{imaps} ({NAME}): serves the installed {NAME}\n",
            env.installed_line(&c)
        )
    );
    assert_eq!(
        dovecot.log_text().matches(RELOADED).count(),
        1,
        "the same Dovecot, reloaded once"
    );
    all_serve(&env, &dovecot, &c);

    // 4. The wrong protocol: a clear STARTTLS error naming the endpoint,
    // with the server's answer when it answers, at the timeout when it
    // waits for a handshake instead.
    let bound = Duration::from_secs(TIMEOUT.parse().expect("TIMEOUT is seconds"));
    let out = env.served(&[pop3], Some("imap")).fails_with(1);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-ssl: 127.0.0.1:{pop3} ({NAME}): STARTTLS: the server answered \"+OK {GREETING}\"\n"
        )
    );
    // IMAPS waits for a ClientHello, the probe for a greeting: the probe
    // ends at the timeout.
    let start = Instant::now();
    let out = env.served(&[imaps], Some("pop3")).fails_with(1);
    let took = start.elapsed();
    assert!(bound <= took && took < 5 * bound, "{took:?}");
    assert_eq!(
        stderr(&out),
        format!("pysk-ssl: 127.0.0.1:{imaps} ({NAME}): STARTTLS: no answer within {TIMEOUT} s\n")
    );
    let out = env.served(&[imap], Some("pop3")).fails_with(1);
    let err = stderr(&out);
    let line = err
        .strip_prefix(&format!(
            "pysk-ssl: 127.0.0.1:{imap} ({NAME}): STARTTLS: the server answered \"* OK [CAPABILITY "
        ))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.ends_with(&format!("] {GREETING}\"\n")), "{err}");
}
