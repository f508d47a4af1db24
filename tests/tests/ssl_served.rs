//! `pysk-ssl served` over many endpoints: a list file and the inventory,
//! each endpoint with its own SNI and STARTTLS, against `openssl s_server`
//! (plain and behind SMTP and POP3 greetings); and a server that answers a
//! byte at a time, which `--timeout` must cut short.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use pysk_tests::tls::{SServer, StartTls, TestCa, Validity};
use pysk_tests::{assert_stderr_is, scratch, stdout, tool, write_switches};

const NAME: &str = "www.example.org";
/// A second name of the same certificate, installed nowhere.
const OTHER: &str = "other.example.org";

/// A certificate directory with `NAME` installed by `pysk-ssl install`,
/// the test root as trust anchor, and servers serving its combined file.
struct Site {
    dir: tempfile::TempDir,
    root: PathBuf,
    plain: SServer,
    smtp: SServer,
    pop3: SServer,
}

impl Site {
    fn new() -> Option<Site> {
        let dir = scratch();
        let ca = TestCa::new();
        let root = dir.path().join("root.pem");
        ca.write_root(&root);
        let leaf = ca
            .intermediate(Validity::CA)
            .leaf(&[NAME, OTHER], Validity::LEAF);
        let given = leaf.write(dir.path(), "given");
        let ssl = dir.path().join("ssl");
        let config = dir.path().join("config");
        write_switches(&config, &[("ssl_key_group", "nogroup".to_owned())]);
        tool("pysk-ssl")
            .config_dir(&config)
            .args(["-q", "install", NAME, "--dir"])
            .arg(&ssl)
            .arg("--cert")
            .arg(&given.cert)
            .arg("--chain")
            .arg(&given.chain)
            .arg("--key")
            .arg(&given.key)
            .arg("--ca-file")
            .arg(&root)
            .succeeds();
        let combined = ssl.join(format!("{NAME}_combined.crt"));
        let key = ssl.join(format!("{NAME}.key"));
        let serve = |starttls| SServer::combined(dir.path(), &combined, &key, starttls);
        Some(Site {
            plain: serve(None)?,
            smtp: serve(Some(StartTls::Smtp))?,
            pop3: serve(Some(StartTls::Pop3))?,
            root,
            dir,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pysk-ssl served` on this site's directory and anchor.
    fn served(&self, args: &[&str]) -> pysk_tests::TestCommand {
        tool("pysk-ssl")
            .config_dir(&self.path("config"))
            .arg("served")
            .args(args)
            .arg("--dir")
            .arg(self.path("ssl"))
            .arg("--ca-file")
            .arg(&self.root)
            .args(["--timeout", "5"])
    }
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).expect("a JSON document")
}

#[test]
fn a_list_gives_each_endpoint_its_own_name_and_starttls() {
    let Some(site) = Site::new() else { return };
    let (plain, smtp, pop3) = (site.plain.addr, site.smtp.addr, site.pop3.addr);
    let list = site.path("endpoints");
    fs::write(
        &list,
        format!(
            "# the site's TLS and mail ports\n{plain} name={NAME}\n\n\
             {smtp} name={NAME} starttls=smtp\n{pop3} starttls=pop3 name={NAME}  # POP3\n"
        ),
    )
    .expect("list");
    let out = site
        .served(&["--from", list.to_str().expect("utf-8"), "--json"])
        .succeeds();
    let doc = json(&out);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["attention"], 0);
    let endpoints = doc["endpoints"].as_array().expect("endpoints");
    let got: Vec<_> = endpoints
        .iter()
        .map(|e| {
            (
                e["endpoint"].as_str(),
                e["sni"].as_str(),
                e["installed"].as_bool(),
            )
        })
        .collect();
    let (plain, smtp, pop3) = (plain.to_string(), smtp.to_string(), pop3.to_string());
    assert_eq!(
        got,
        [
            (Some(plain.as_str()), Some(NAME), Some(true)),
            (Some(smtp.as_str()), Some(NAME), Some(true)),
            (Some(pop3.as_str()), Some(NAME), Some(true)),
        ]
    );
    assert!(
        endpoints
            .iter()
            .all(|e| e["problems"] == serde_json::json!([]))
    );

    // The arguments come first, then the list; --starttls is the
    // arguments' only: the list's plain endpoint stays plain.
    let out = site
        .served(&[&smtp, "--name", NAME, "--starttls", "smtp"])
        .args(["--from", list.to_str().expect("utf-8")])
        .succeeds();
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {smtp} ({NAME}): serves the installed {NAME}\n\
             pysk-ssl: {plain} ({NAME}): serves the installed {NAME}\n\
             pysk-ssl: {smtp} ({NAME}): serves the installed {NAME}\n\
             pysk-ssl: {pop3} ({NAME}): serves the installed {NAME}\n"
        ),
    );
}

#[test]
fn a_bad_list_line_is_named_and_nothing_is_probed() {
    let Some(site) = Site::new() else { return };
    let list = site.path("endpoints");
    let plain = site.plain.addr;
    for (text, why) in [
        (
            format!("{plain} name={NAME}\n127.0.0.1\n"),
            "2: \"127.0.0.1\": expected HOST:PORT",
        ),
        (
            format!("{plain} starttls=ftp\n"),
            "1: \"ftp\": expected smtp, imap or pop3",
        ),
        (
            format!("{plain} sni={NAME}\n"),
            "1: \"sni\": expected name, expect or starttls",
        ),
    ] {
        fs::write(&list, text).expect("list");
        let out = site
            .served(&["--from", list.to_str().expect("utf-8")])
            .fails_with(65);
        assert_stderr_is(&out, &format!("pysk-ssl: {}:{why}\n", list.display()));
        assert_eq!(stdout(&out), "");
    }
    // A list empty by mistake is not "all is well".
    fs::write(&list, "# nothing yet\n\n").expect("list");
    let out = site
        .served(&["--from", list.to_str().expect("utf-8")])
        .fails_with(65);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {}: no endpoint in it: nothing to probe\n",
            list.display()
        ),
    );
    let missing = site.path("no-such-list");
    let out = site
        .served(&["--from", missing.to_str().expect("utf-8")])
        .fails_with(66);
    assert!(
        pysk_tests::stderr(&out).starts_with(&format!("pysk-ssl: {}: ", missing.display())),
        "{}",
        pysk_tests::stderr(&out)
    );
    let out = site.served(&[]).fails_with(2);
    assert!(
        pysk_tests::stderr(&out).contains("<HOST:PORT>"),
        "{}",
        pysk_tests::stderr(&out)
    );
}

#[test]
fn the_inventory_compares_what_is_installed_here_and_judges_the_rest() {
    let Some(site) = Site::new() else { return };
    let (plain, smtp) = (site.plain.addr, site.smtp.addr);
    let config = site.path("config");
    // The inventory reaches each server at its address; the ports are
    // those of the servers the test started.
    fs::write(
        config.join("hosts"),
        format!(
            "# NAME ADDRESS ssl=PORTS\n{NAME} 127.0.0.1 ssl={},{}/smtp\n{OTHER} 127.0.0.1 ssl={}\n",
            plain.port(),
            smtp.port(),
            plain.port()
        ),
    )
    .expect("inventory");
    let out = site.served(&["--inventory"]).succeeds();
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {plain} ({NAME}): serves the installed {NAME}\n\
             pysk-ssl: {smtp} ({NAME}): serves the installed {NAME}\n\
             pysk-ssl: {plain} ({OTHER}): serves a good chain for {OTHER} (not installed here, not compared)\n"
        ),
    );
    let out = site.served(&["--inventory", "--json"]).succeeds();
    let doc = json(&out);
    assert_eq!(doc["endpoints"][2]["installed"], serde_json::Value::Null);
    assert_eq!(doc["endpoints"][2]["name"], OTHER);

    // A name of the inventory the served certificate does not cover is a
    // problem even though nothing is installed here to compare with.
    fs::write(
        config.join("hosts"),
        format!("mx.example.net 127.0.0.1 ssl={}/smtp\n", smtp.port()),
    )
    .expect("inventory");
    let out = site.served(&["--inventory"]).fails_with(1);
    assert_stderr_is(
        &out,
        &format!("pysk-ssl: {smtp} (mx.example.net): the certificate is for {NAME}, {OTHER}\n"),
    );

    fs::write(config.join("hosts"), "mx.example.net ssl=25/ftp\n").expect("inventory");
    let out = site.served(&["--inventory"]).fails_with(65);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {}:1: \"ftp\": expected smtp, imap or pop3\n",
            config.join("hosts").display()
        ),
    );
}

/// A server that sends its greeting one byte every 200 ms and never ends
/// the line: only a bound on the whole probe stops the client.
fn dripping_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                for _ in 0..600 {
                    if client.write_all(b"2").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
    });
    port
}

#[test]
fn a_server_answering_a_byte_at_a_time_is_cut_off_at_the_timeout() {
    let dir = scratch();
    fs::create_dir_all(dir.path().join("ssl")).expect("ssl dir");
    let port = dripping_server();
    let endpoint = format!("127.0.0.1:{port}");
    let out = tool("pysk-ssl")
        .args(["served", &endpoint, "--name", NAME, "--starttls", "smtp"])
        .args(["--timeout", "1", "--dir"])
        .arg(dir.path().join("ssl"))
        .fails_with(1);
    assert_stderr_is(
        &out,
        &format!("pysk-ssl: {endpoint} ({NAME}): STARTTLS: no answer within 1 s\n"),
    );
}
