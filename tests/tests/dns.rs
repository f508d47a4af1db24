//! End-to-end tests of `pysk-dns` against the real programs: documents
//! served over HTTPS with basic auth by a test server, zone files checked
//! by `named-checkzone` and `named-checkconf`, and a real `named` serving
//! the result, queried with `dig`.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use pysk_tests::bind::{Named, check_conf, check_zone};
use pysk_tests::http::{HttpServer, Reply};
use pysk_tests::{
    TempDir, TestCommand, assert_stderr, code, examples, require, scratch, secret_file, stderr,
    test_certificate, tool, write_switches,
};

const USER: &str = "pysk";
const PASSWORD: &str = "s3cret-dns-pw";

/// Two managed servers publishing the example documents over HTTPS.
struct Fleet {
    dir: TempDir,
    http: HttpServer,
    config: PathBuf,
}

impl Fleet {
    fn new() -> Option<Fleet> {
        let dir = scratch();
        let (cert, key) = test_certificate(dir.path())?;
        let http = HttpServer::start(Some((&cert, &key)), Some((USER, PASSWORD)));
        let fleet = Fleet {
            config: dir.path().join("etc"),
            http,
            dir,
        };
        for server in ["web1", "web2"] {
            fleet.serve(server, &example(server));
        }
        fs::create_dir_all(&fleet.config).expect("config dir");
        fleet.write_hosts("");
        secret_file(&fleet.path("dns.password"), PASSWORD);
        write_switches(&fleet.config, &fleet.switches());
        Some(fleet)
    }

    /// The switches every test starts from.
    fn switches(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dns_api_user", USER.to_owned()),
            ("dns_api_password_file", self.show("dns.password")),
            ("dns_ca_file", self.show("cert.pem")),
            ("dns_state_dir", self.show("state")),
            ("dns_zone_dir", self.show("zones")),
            ("dns_include", self.show("named.conf.pysk")),
            (
                "dns_zone_options",
                "allow-transfer { 127.0.0.1; };".to_owned(),
            ),
            ("dns_servers_zone", "example.net".to_owned()),
        ]
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn show(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    fn serve(&self, server: &str, body: &str) {
        self.http
            .set(&format!("/{server}.json"), Reply::Body(body.into()));
    }

    /// The inventory: both servers at the test server, plus `extra` lines.
    fn write_hosts(&self, extra: &str) {
        let hosts = format!(
            "web1.example.net 192.0.2.1 url={}\nweb2.example.net 192.0.2.2 url={}\n{extra}",
            self.http.url("/web1.json"),
            self.http.url("/web2.json")
        );
        fs::write(self.config.join("hosts"), hosts).expect("write hosts");
    }

    /// `pysk-dns` with this fleet's configuration, for `ns.example.net`.
    fn dns(&self, args: &[&str]) -> TestCommand {
        tool("pysk-dns")
            .config_dir(&self.config)
            .args(["--host", "ns.example.net"])
            .args(args)
    }

    fn zone(&self, zone: &str) -> String {
        fs::read_to_string(self.path("zones").join(format!("db.{zone}"))).expect("zone file")
    }

    fn serial(&self, zone: &str) -> u32 {
        let out = self.dns(&["serial", zone]).succeeds();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a serial")
    }

    /// Every file under the scratch directory's state, zones and include,
    /// with its mtime and content.
    fn files(&self) -> BTreeMap<PathBuf, (SystemTime, Vec<u8>)> {
        let mut all = BTreeMap::new();
        for dir in ["state", "state/snapshots", "zones"] {
            for e in fs::read_dir(self.path(dir)).expect("read dir").flatten() {
                if e.file_type().expect("type").is_file() {
                    let meta = e.metadata().expect("metadata");
                    let content = fs::read(e.path()).expect("read");
                    all.insert(e.path(), (meta.modified().expect("mtime"), content));
                }
            }
        }
        let inc = self.path("named.conf.pysk");
        let meta = fs::metadata(&inc).expect("include");
        all.insert(
            inc.clone(),
            (
                meta.modified().expect("mtime"),
                fs::read(&inc).expect("read"),
            ),
        );
        all
    }
}

fn example(server: &str) -> String {
    fs::read_to_string(examples().join(format!("dns/{server}.example.net.json")))
        .expect("example document")
}

/// The expected long DKIM text of the example, as dig prints it: two
/// strings, the first of 255 bytes.
fn dkim_answer() -> String {
    let doc: serde_json::Value = serde_json::from_str(&example("web1")).expect("json");
    let text = doc["zones"][0]["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["name"] == "mail._domainkey")
        .and_then(|r| r["value"].as_str())
        .expect("the DKIM record")
        .to_owned();
    assert!(text.len() > 255);
    format!("\"{}\" \"{}\"", &text[..255], &text[255..])
}

#[test]
fn fetched_and_built_zones_are_served_by_named() {
    let Some(fleet) = Fleet::new() else { return };
    if require("named", "bind9").is_none() {
        return;
    }
    let out = fleet.dns(&["fetch"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "quiet when all is well");
    assert!(out.stdout.is_empty());

    for zone in ["example.org", "example.com", "example.net"] {
        check_zone(zone, &fleet.path("zones").join(format!("db.{zone}")));
    }
    let named = Named::start(&fleet.path("named"), &fleet.path("named.conf.pysk"))
        .expect("named is installed");
    named.serving(&["example.org", "example.com", "example.net"]);
    check_conf(&named.conf);

    let q = |name: &str, t: &str| named.query(name, t);
    assert_eq!(q("www.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(q("www.example.org", "AAAA"), ["2001:db8::10"]);
    assert_eq!(q("example.org", "MX"), ["10 mail.example.org."]);
    assert_eq!(q("mail._domainkey.example.org", "TXT"), [dkim_answer()]);
    assert_eq!(q("example.org", "TXT"), ["\"v=spf1 mx -all\""]);
    assert_eq!(
        q("_submission._tcp.example.org", "SRV"),
        ["0 1 587 mail.example.org."]
    );
    assert_eq!(q("example.org", "CAA"), ["0 issue \"letsencrypt.org\""]);
    assert_eq!(q("webmail.example.org", "CNAME"), ["mail.example.org."]);
    assert_eq!(
        q("example.org", "NS"),
        ["ns1.example.net.", "ns2.example.net."]
    );
    // The nested domain from the second server, inside example.org's file.
    assert_eq!(q("shop.example.org", "A"), ["192.0.2.20"]);
    assert_eq!(q("www.shop.example.org", "CNAME"), ["shop.example.org."]);
    assert!(
        fleet
            .zone("example.org")
            .contains("$ORIGIN shop.example.org.\n")
    );
    assert!(!fleet.path("zones/db.shop.example.org").exists());
    // The second server's own zone, with its null MX.
    assert_eq!(q("www.example.com", "A"), ["192.0.2.20"]);
    assert_eq!(q("example.com", "MX"), ["0 ."]);
    // The inventory's servers got their addresses in dns_servers_zone.
    assert_eq!(q("web1.example.net", "A"), ["192.0.2.1"]);
    assert_eq!(q("web2.example.net", "A"), ["192.0.2.2"]);
    assert_eq!(q("ns2.example.net", "A"), ["192.0.2.54"]);
    let serial = fleet.serial("example.org");
    assert_eq!(
        q("example.org", "SOA")[0].split(' ').nth(2),
        Some(serial.to_string().as_str())
    );
}

#[test]
fn serials_change_only_with_content_and_stay_monotonic() {
    let Some(fleet) = Fleet::new() else { return };
    fleet.dns(&["-q", "fetch"]).succeeds();
    fleet.dns(&["-q", "build"]).succeeds();
    let (org, com) = (fleet.serial("example.org"), fleet.serial("example.com"));

    // Nothing changed: no file written, every mtime as it was.
    let before = fleet.files();
    fleet.dns(&["-q", "build"]).succeeds();
    assert_eq!(fleet.files(), before);

    // One record of web2's example.com changes: only that zone's serial.
    let changed = example("web2").replace(
        "\"www\", \"type\": \"A\", \"value\": \"192.0.2.20\"",
        "\"www\", \"type\": \"A\", \"value\": \"192.0.2.21\"",
    );
    assert_ne!(changed, example("web2"));
    fleet.serve("web2", &changed);
    fleet.dns(&["-q", "fetch"]).succeeds();
    let dry = fleet.dns(&["build", "--dry-run"]).output();
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    let diff = String::from_utf8_lossy(&dry.stdout);
    assert!(diff.contains("-www\t7200\tIN\tA\t192.0.2.20\t; web2.example.net\n+www\t7200\tIN\tA\t192.0.2.21\t; web2.example.net\n"), "{diff}");
    assert!(!diff.contains("db.example.org"), "{diff}");
    assert!(
        fleet.zone("example.com").contains("192.0.2.20"),
        "dry run wrote nothing"
    );
    fleet.dns(&["-q", "build"]).succeeds();
    assert_eq!(fleet.serial("example.org"), org);
    assert!(fleet.serial("example.com") > com);

    // 120 changes in one day: every serial higher than the one before.
    let mut last = fleet.serial("example.com");
    for i in 0..120 {
        fleet.serve(
            "web2",
            &changed.replace("192.0.2.21", &format!("198.51.100.{}", i % 250)),
        );
        fleet.dns(&["-q", "fetch"]).succeeds();
        fleet.dns(&["-q", "build"]).succeeds();
        let now = fleet.serial("example.com");
        assert!(now > last, "change {i}: serial {now} after {last}");
        assert!(fleet.zone("example.com").contains(&format!("( {now} ")));
        last = now;
    }
    check_zone("example.com", &fleet.path("zones/db.example.com"));
    assert_eq!(fleet.serial("example.org"), org);
}

#[test]
fn an_unreachable_server_keeps_its_zones() {
    let Some(fleet) = Fleet::new() else { return };
    fleet.dns(&["-q", "fetch"]).succeeds();
    fleet.dns(&["-q", "build"]).succeeds();
    let before = fleet.files();
    fleet.http.set("/web2.json", Reply::Status(503));
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("web2.example.net: unreachable (HTTP 503")
            && err.contains("keeping its snapshot from"),
        "{err}"
    );
    // A server that does not answer at all.
    fleet.write_hosts("web3.example.net 192.0.2.3 url=https://127.0.0.1:1/web3.json\n");
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1);
    assert_stderr(
        &out,
        "pysk-dns: web3.example.net: unreachable (Connection refused); it has no snapshot yet\n",
    );
    assert!(!stderr(&out).contains("os error"), "{}", stderr(&out));
    let out = fleet.dns(&["-q", "fetch", "--json"]).fails_with(1);
    let doc = json_document(&out);
    assert_eq!(doc["servers"][2]["fate"], "unreachable");
    assert_eq!(doc["servers"][2]["reason"], "Connection refused");
    fleet.write_hosts("");
    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let after = fleet.files();
    // web1 answered every fetch, so its snapshot is refreshed (its
    // `fetched` stamp) whenever a fetch falls in a later second; every
    // other file, web2's kept snapshot included, is untouched.
    let refreshed = fleet.path("state/snapshots/web1.example.net.json");
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v) && **p != refreshed)
        .map(|(p, _)| p.clone())
        .collect();
    assert!(changed.is_empty(), "changed: {changed:?}");
    assert!(after.contains_key(&refreshed), "web1 keeps a snapshot");
    assert!(
        fs::read_to_string(fleet.path("named.conf.pysk"))
            .expect("include")
            .contains("zone \"example.com\"")
    );
}

#[test]
fn hostile_documents_change_nothing_and_are_reported() {
    let Some(fleet) = Fleet::new() else { return };
    fleet.dns(&["-q", "fetch"]).succeeds();
    fleet.dns(&["-q", "build"]).succeeds();
    let before = fleet.files();
    let good = example("web2");
    let hostile: Vec<(&str, String)> = vec![
        (
            "character",
            good.replace(
                "\"www\", \"type\": \"CNAME\"",
                "\"www\\n$INCLUDE /etc/shadow\", \"type\": \"CNAME\"",
            ),
        ),
        (
            "invalid type",
            good.replace("\"ttl\": 7200", "\"ttl\": \"7200\""),
        ),
        (
            "not an IPv4 address",
            good.replace("192.0.2.20", "192.0.2.999"),
        ),
        ("unknown record type", good.replace("\"CNAME\"", "\"PTR\"")),
        (
            "published by",
            good.replace("web2.example.net", "web1.example.net"),
        ),
        ("not a version 1", "<html>oops</html>".to_owned()),
    ];
    for (why, body) in &hostile {
        assert_ne!(body, &good, "{why}: the test changed nothing");
        fleet.serve("web2", body);
        let out = fleet.dns(&["-q", "fetch"]).output();
        assert_eq!(code(&out), 1, "{why}");
        let err = stderr(&out);
        assert!(
            err.contains("web2.example.net: document rejected") && err.contains(why),
            "{why}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // A 100 MB body is cut off at the limit, not read into memory.
    fleet.http.set("/web2.json", Reply::Endless(100_000_000));
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1);
    assert_stderr(&out, "larger than");
    // A server that stops sending half-way is given up after the read
    // timeout (1 s here), not waited for.
    fleet
        .http
        .set("/web2.json", Reply::Stall(Duration::from_secs(60)));
    let mut switches = fleet.switches();
    switches.push(("dns_read_timeout", "1".to_owned()));
    write_switches(&fleet.config, &switches);
    let start = Instant::now();
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_stderr(&out, "web2.example.net: unreachable (");
    assert_stderr(&out, "timeout");
    write_switches(&fleet.config, &fleet.switches());
    // Plain http to a host that is not loopback is refused outright.
    fleet.serve("web2", &good);
    fleet.write_hosts("web9.example.net 192.0.2.9 url=http://192.0.2.9/dns.json\n");
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1);
    assert_stderr(&out, "refusing plain http to 192.0.2.9");
    fleet.write_hosts("");

    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let after = fleet.files();
    for (path, (_, content)) in &before {
        if path.ends_with("web2.example.net.json") {
            // Only the fetch time moved; the document is the good one.
            let snap: serde_json::Value = serde_json::from_slice(&after[path].1).expect("json");
            let old: serde_json::Value = serde_json::from_slice(content).expect("json");
            assert_eq!(snap["document"], old["document"]);
        } else if !path.ends_with("web1.example.net.json") {
            assert_eq!(after.get(path), before.get(path), "{}", path.display());
        }
    }
    // No password in any message.
    assert!(!stderr(&out).contains(PASSWORD));
}

#[test]
fn a_document_dropping_most_zones_is_held_back_unless_forced() {
    let Some(fleet) = Fleet::new() else { return };
    fleet.dns(&["-q", "fetch"]).succeeds();
    let doc: serde_json::Value = serde_json::from_str(&example("web2")).expect("json");
    let mut fewer = doc.clone();
    fewer["zones"] = serde_json::Value::Array(Vec::new());
    fleet.serve("web2", &fewer.to_string());
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1);
    assert_stderr(
        &out,
        "held back: the new document drops 2 of its 2 zones (example.com, shop.example.org)",
    );
    fleet.dns(&["-q", "build"]).succeeds();
    assert!(fleet.path("zones/db.example.com").exists());
    let out = fleet.dns(&["-q", "fetch", "--force"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = fleet.dns(&["build"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        !fleet.path("zones/db.example.com").exists(),
        "its own stale file removed"
    );
    let include = fs::read_to_string(fleet.path("named.conf.pysk")).expect("include");
    assert!(!include.contains("example.com"), "{include}");
    assert!(!fleet.zone("example.org").contains("shop"));
}

#[test]
fn conflicts_name_both_servers_and_leave_out_only_their_records() {
    let Some(fleet) = Fleet::new() else { return };
    if require("named", "bind9").is_none() {
        return;
    }
    // web2 also serves example.org: another name server set, a CNAME
    // where web1 has addresses, data below a delegation, and one record
    // identical to web1's.
    let extra = r#"{"version": 1, "server": "web2.example.net", "zones": [
 {"name": "example.org", "ttl": 3600, "ns": ["ns1.example.net.", "ns3.example.net."], "records": [
  {"name": "www", "type": "CNAME", "value": "elsewhere.example.net."},
  {"name": "mail", "type": "A", "value": "192.0.2.25"},
  {"name": "lab", "type": "NS", "value": "ns.lab.example.org."},
  {"name": "ns.lab", "type": "A", "value": "192.0.2.99"},
  {"name": "host.lab", "type": "A", "value": "192.0.2.98"},
  {"name": "ftp", "type": "A", "value": "192.0.2.30"}
 ]}]}"#;
    fleet.serve("web2", extra);
    fleet.dns(&["-q", "fetch", "--force"]).succeeds();
    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 1, "conflicts need attention");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    // web1 published first (inventory order on a first build): web2's
    // differing name servers and its CNAME over web1's names are refused.
    assert!(lines.iter().any(|l| l.contains("example.org ns from web2.example.net differs from that of web1.example.net, which owns it; left out, web1.example.net's served")), "{err}");
    assert!(
        lines.iter().any(|l| l.contains(
            "www.example.org CNAME from web2.example.net lies at or above www.example.org A from web1.example.net; left out"
        )),
        "{err}"
    );
    assert!(lines.iter().any(|l| l.contains("host.lab.example.org A from web2.example.net lies at or below the delegation lab.example.org from web2.example.net")), "{err}");
    let zone = fleet.zone("example.org");
    assert!(
        zone.contains("mail\t3600\tIN\tA\t192.0.2.25\t; web1.example.net, web2.example.net\n"),
        "{zone}"
    );
    check_zone("example.org", &fleet.path("zones/db.example.org"));
    let named = Named::start(&fleet.path("named"), &fleet.path("named.conf.pysk"))
        .expect("named is installed");
    named.serving(&["example.org"]);
    assert_eq!(
        named.query("example.org", "NS"),
        ["ns1.example.net.", "ns2.example.net."]
    );
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("ftp.example.org", "A"), ["192.0.2.30"]);
    assert_eq!(
        named.query("www.example.org", "CNAME"),
        Vec::<String>::new()
    );
}

#[test]
fn reload_checks_the_serial_named_serves() {
    let Some(fleet) = Fleet::new() else { return };
    if require("named", "bind9").is_none() {
        return;
    }
    fleet.dns(&["-q", "fetch"]).succeeds();
    fleet.dns(&["-q", "build"]).succeeds();
    let named = Named::start(&fleet.path("named"), &fleet.path("named.conf.pysk"))
        .expect("named is installed");
    let mut switches = fleet.switches();
    switches.push(("dns_check_server", named.addr.to_string()));
    switches.push(("dns_check_timeout", "3".to_owned()));
    let reload_at = switches.len();
    switches.push(("dns_reload_command", format!("kill -HUP {}", named.pid())));
    write_switches(&fleet.config, &switches);
    // Nothing changed: no reload at all (a reload command that fails
    // would show it).
    fleet.dns(&["-q", "build"]).output();
    switches[reload_at].1 = "false".to_owned();
    write_switches(&fleet.config, &switches);
    let out = fleet.dns(&["-q", "build", "--reload"]).output();
    assert_eq!(code(&out), 0, "no change, no reload: {}", stderr(&out));

    switches[reload_at].1 = format!("kill -HUP {}", named.pid());
    write_switches(&fleet.config, &switches);
    fleet.serve("web2", &example("web2").replace("192.0.2.20", "192.0.2.77"));
    fleet.dns(&["-q", "fetch"]).succeeds();
    let out = fleet.dns(&["-q", "build", "--reload"]).output();
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), named.log_text());
    assert_eq!(named.query("www.example.com", "A"), ["192.0.2.77"]);

    // A "reload" that reloads nothing: the old serial is still served,
    // and the run says so.
    switches[reload_at].1 = "true".to_owned();
    write_switches(&fleet.config, &switches);
    fleet.serve("web2", &example("web2").replace("192.0.2.20", "192.0.2.78"));
    fleet.dns(&["-q", "fetch"]).succeeds();
    let out = fleet.dns(&["-q", "build", "--reload"]).output();
    assert_eq!(code(&out), 1);
    let serial = fleet.serial("example.com");
    assert_stderr(
        &out,
        &format!(
            "example.com: after the reload {} serves serial {}, not serial {serial}",
            named.addr,
            serial - 1
        ),
    );
}

#[test]
fn a_zone_without_agreed_name_servers_keeps_its_previous_file() {
    let Some(fleet) = Fleet::new() else { return };
    fleet.dns(&["-q", "fetch"]).succeeds();
    fleet.dns(&["-q", "build"]).succeeds();
    let before = fleet.files();
    // web1 now gives example.org no name servers (and nobody else does).
    let doc = r#"{"version": 1, "server": "web1.example.net", "zones": [
 {"name": "example.org", "records": [
  {"name": "new", "type": "A", "value": "192.0.2.44"}]}]}"#;
    fleet.serve("web1", doc);
    fleet.dns(&["-q", "fetch", "--force"]).succeeds();
    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 1);
    assert_stderr(&out, "example.org: not written: no name servers");
    assert_stderr(&out, "its previous file stays");
    let org = fleet.path("zones/db.example.org");
    assert_eq!(
        fs::read(&org).expect("zone file"),
        before[&org].1,
        "the previous file is untouched"
    );
    let include = fs::read_to_string(fleet.path("named.conf.pysk")).expect("include");
    assert!(include.contains("zone \"example.org\""), "{include}");
    assert!(include.contains("zone \"example.com\""), "{include}");
}

#[test]
fn a_second_run_while_one_holds_the_lock_exits_75_and_writes_nothing() {
    let Some(fleet) = Fleet::new() else { return };
    let Some(flock) = require("flock", "util-linux") else {
        return;
    };
    fleet.dns(&["-q", "fetch"]).succeeds();
    // --no-fork: the lock is held by the process we kill, not by a child.
    let mut holder = Command::new(flock)
        .arg("--no-fork")
        .arg(fleet.path("state/.lock"))
        .args(["sleep", "30"])
        .spawn()
        .expect("flock");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = fleet.dns(&["-q", "build"]).output();
    let dry = fleet.dns(&["-q", "build", "--dry-run"]).output();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_eq!(
        code(&dry),
        75,
        "a dry run takes an existing lock: {}",
        stderr(&dry)
    );
    assert_eq!(dry.stdout, b"", "no diff without the lock");
    assert!(!fleet.path("zones").exists(), "nothing written");
    fleet.dns(&["-q", "build"]).succeeds();
}

#[test]
fn a_held_lock_is_waited_for_with_wait() {
    let Some(fleet) = Fleet::new() else { return };
    let Some(flock) = require("flock", "util-linux") else {
        return;
    };
    fleet.dns(&["-q", "fetch"]).succeeds();
    let mut holder = Command::new(flock)
        .arg("--no-fork")
        .arg(fleet.path("state/.lock"))
        .args(["sleep", "1"])
        .spawn()
        .expect("flock");
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let out = fleet.dns(&["-q", "build", "--wait", "20"]).succeeds();
    let _ = holder.wait();
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "it waited for the holder: {:?}",
        start.elapsed()
    );
    assert_eq!(stderr(&out), "");
    assert!(fleet.path("zones/db.example.org").exists());
}

/// Parses a `--json` document, checking that `"version": 1` comes first.
fn json_document(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("{\n  \"version\": 1,\n"), "{text}");
    serde_json::from_str(&text).expect("one JSON document")
}

#[test]
fn fetch_json_gives_every_servers_fate() {
    let Some(fleet) = Fleet::new() else { return };
    let out = fleet.dns(&["fetch", "--json"]).succeeds();
    assert_eq!(stderr(&out), "", "the summary is the document");
    let doc = json_document(&out);
    assert_eq!(doc["counts"]["servers"], 2);
    assert_eq!(doc["counts"]["good"], 2);
    assert_eq!(doc["counts"]["updated"], 2);
    assert_eq!(doc["servers"][0]["server"], "web1.example.net");
    assert_eq!(doc["servers"][0]["fate"], "updated");
    for (i, server) in ["web1", "web2"].into_iter().enumerate() {
        let sent: serde_json::Value = serde_json::from_str(&example(server)).expect("json");
        let zones = sent["zones"].as_array().expect("zones").len();
        assert_eq!(doc["servers"][i]["zones"], zones, "{server}");
    }

    fleet.http.set("/web2.json", Reply::Status(503));
    let out = fleet.dns(&["fetch", "--json"]).fails_with(1);
    assert_stderr(&out, "web2.example.net: unreachable (HTTP 503");
    let doc = json_document(&out);
    assert_eq!(doc["counts"]["good"], 1);
    assert_eq!(doc["counts"]["unchanged"], 1);
    assert_eq!(doc["counts"]["unreachable"], 1);
    let web2 = &doc["servers"][1];
    assert_eq!(web2["fate"], "unreachable");
    assert_eq!(web2["good"], false);
    assert_eq!(web2["kept_snapshot"], true);
    assert!(web2["snapshot_age_seconds"].as_u64().is_some(), "{web2}");
    assert!(
        web2["reason"].as_str().is_some_and(|r| r.contains("503")),
        "{web2}"
    );
}

#[test]
fn build_json_counts_zones_and_files() {
    let Some(fleet) = Fleet::new() else { return };
    fleet.dns(&["-q", "fetch"]).succeeds();
    let out = fleet.dns(&["build", "--json"]).succeeds();
    assert_eq!(stderr(&out), "", "no serial lines beside the document");
    let doc = json_document(&out);
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["counts"]["zones"], 3);
    assert_eq!(doc["counts"]["written"], 3);
    assert_eq!(doc["counts"]["unchanged"], 0);
    // Three zone files, the include, the serials and the RRset owners.
    assert_eq!(doc["counts"]["files"], 6);
    assert_eq!(doc["counts"]["removed"], 0);
    assert_eq!(doc["problems"], serde_json::json!([]));
    let org = doc["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .find(|z| z["zone"] == "example.org")
        .expect("example.org");
    assert_eq!(org["status"], "written");
    assert_eq!(org["serial"], fleet.serial("example.org"));

    let out = fleet.dns(&["build", "--json"]).succeeds();
    let doc = json_document(&out);
    assert_eq!(doc["counts"]["written"], 0);
    assert_eq!(doc["counts"]["unchanged"], 3);
    assert_eq!(doc["files"], serde_json::json!([]));
}

#[test]
fn build_dry_run_json_gives_the_document_of_the_real_build_instead_of_the_diff() {
    let Some(fleet) = Fleet::new() else { return };
    fleet.dns(&["-q", "fetch"]).succeeds();
    let diff = fleet.dns(&["-q", "build", "--dry-run"]).succeeds();
    let diff = String::from_utf8_lossy(&diff.stdout).into_owned();
    let dry = fleet.dns(&["build", "--dry-run", "--json"]).succeeds();
    assert_eq!(stderr(&dry), "", "no serial lines beside the document");
    assert!(!fleet.path("zones").exists(), "a dry run writes nothing");
    assert!(!fleet.path("state/serials.json").exists());
    let mut would = json_document(&dry);
    assert_eq!(would["dry_run"], true);
    assert_eq!(would["counts"]["written"], 3);
    assert_eq!(would["counts"]["files"], 6);
    assert_eq!(
        would["files"][0],
        fleet.show("state/serials.json"),
        "the serial state first"
    );
    let out = fleet.dns(&["build", "--json"]).succeeds();
    let mut real = json_document(&out);
    assert_eq!(real["dry_run"], false);
    // The plain dry run's diff of the serial state is the file written.
    let written = fs::read_to_string(fleet.path("state/serials.json")).expect("serials");
    let added: String = written.lines().map(|l| format!("+{l}\n")).collect();
    let header = format!(
        "--- /dev/null\n+++ {}\n@@ -0,0 +1,{} @@\n",
        fleet.show("state/serials.json"),
        written.lines().count()
    );
    assert!(diff.starts_with(&(header + &added)), "{diff}");
    would["dry_run"] = false.into();
    real["dry_run"] = false.into();
    assert_eq!(would, real, "the dry run foretold the real build");

    // Nothing to do: the same document with nothing written.
    let out = fleet.dns(&["build", "--dry-run", "--json"]).succeeds();
    let doc = json_document(&out);
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["counts"]["unchanged"], 3);
    assert_eq!(doc["files"], serde_json::json!([]));
}

#[test]
fn a_dry_run_creates_no_directory_and_no_lock_file() {
    let Some(fleet) = Fleet::new() else { return };
    let fresh = fleet.path("fresh");
    let fresh_arg = fleet.show("fresh");
    let out = fleet
        .dns(&["-q", "build", "--dry-run", "--state-dir", &fresh_arg])
        .fails_with(1);
    assert_stderr(
        &out,
        "pysk-dns: web1.example.net: no snapshot yet (run pysk-dns fetch); its zones are not built\n",
    );
    // The include it would write, with no zone in it yet.
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.starts_with(&format!(
            "--- /dev/null\n+++ {}\n",
            fleet.show("named.conf.pysk")
        )),
        "{diff}"
    );
    assert!(!fresh.exists(), "no state directory, no lock file");
    assert!(!fleet.path("zones").exists());
    assert!(!fleet.path("named.conf.pysk").exists());
}

#[test]
fn a_bad_switch_value_is_named_with_its_file_and_line() {
    let Some(fleet) = Fleet::new() else { return };
    let mut switches = fleet.switches();
    switches.push(("dns_read_timeout", "soon".to_owned()));
    write_switches(&fleet.config, &switches);
    let out = fleet.dns(&["-q", "fetch"]).fails_with(78);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-dns: {}:{}: dns_read_timeout: \"soon\": expected seconds from 0 to 86400\n",
            fleet.config.join("serverconfig/default").display(),
            switches.len()
        )
    );
    assert!(!fleet.path("state").exists(), "nothing done");
}

#[test]
fn insecure_plaintext_allows_http_and_the_old_spellings_are_told() {
    let Some(fleet) = Fleet::new() else { return };
    fleet.write_hosts("web9.example.net 192.0.2.9 url=http://192.0.2.9/dns.json\n");
    let mut switches = fleet.switches();
    switches.push(("dns_connect_timeout", "1".to_owned()));
    write_switches(&fleet.config, &switches);
    let refused = "refusing plain http to 192.0.2.9 (records and password would cross \
                   the network unprotected; use https, or --insecure-plaintext)";
    let out = fleet.dns(&["-q", "fetch"]).fails_with(1);
    assert_stderr(&out, refused);
    // Allowed, it is tried (and that address answers nobody).
    for option in ["--insecure-plaintext", "--insecure-http"] {
        let out = fleet.dns(&["-q", "fetch", option]).fails_with(1);
        assert_stderr(&out, "web9.example.net: unreachable (");
        assert!(!stderr(&out).contains("refusing"), "{option}");
    }
    // The switch's old key is still read for one release, and the run
    // says it was renamed.
    switches.push(("dns_insecure_http", "yes".to_owned()));
    write_switches(&fleet.config, &switches);
    let out = fleet.dns(&["-q", "fetch"]).fails_with(1);
    assert_stderr(
        &out,
        &format!(
            "pysk-dns: {}:{}: dns_insecure_http: renamed to dns_insecure_plaintext; \
             read as dns_insecure_plaintext for this release, rename it\n",
            fleet.config.join("serverconfig/default").display(),
            switches.len()
        ),
    );
    assert!(!stderr(&out).contains("refusing"), "{}", stderr(&out));
    assert_stderr(&out, "web9.example.net: unreachable (");
    let last = switches.len() - 1;
    switches[last] = ("dns_insecure_plaintext", "yes".to_owned());
    write_switches(&fleet.config, &switches);
    let out = fleet.dns(&["-q", "fetch"]).fails_with(1);
    assert!(!stderr(&out).contains("refusing"), "{}", stderr(&out));
    assert_stderr(&out, "web9.example.net: unreachable (");
}
