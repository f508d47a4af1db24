//! End-to-end tests of `pysk-dns` against documents that empty themselves,
//! records BIND refuses, serial state restored from an older backup and a
//! damaged snapshot: documents served over HTTPS by a test server, zone
//! files checked by `named-checkzone`, and a real `named` serving the
//! result, queried with `dig`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use pysk_tests::bind::Named;
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
    /// The fleet, fetched and built once; `None` (outside CI) when BIND is
    /// not installed.
    fn built() -> Option<Fleet> {
        require("named", "bind9")?;
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
        let hosts = format!(
            "web1.example.net 192.0.2.1 url={}\nweb2.example.net 192.0.2.2 url={}\n",
            fleet.http.url("/web1.json"),
            fleet.http.url("/web2.json")
        );
        fs::write(fleet.config.join("hosts"), hosts).expect("write hosts");
        secret_file(&fleet.path("dns.password"), PASSWORD);
        fleet.switch(&[]);
        fleet.dns(&["-q", "fetch"]).succeeds();
        fleet.dns(&["-q", "build"]).succeeds();
        Some(fleet)
    }

    /// Writes the switches every test starts from, plus `extra`.
    fn switch(&self, extra: &[(&'static str, String)]) {
        let mut switches = vec![
            ("dns_api_user", USER.to_owned()),
            ("dns_api_password_file", self.show("dns.password")),
            ("dns_ca_file", self.show("cert.pem")),
            ("dns_state_dir", self.show("state")),
            ("dns_zone_dir", self.show("zones")),
            ("dns_include", self.show("named.conf.pysk")),
            ("dns_servers_zone", "example.net".to_owned()),
        ];
        switches.extend_from_slice(extra);
        write_switches(&self.config, &switches);
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

    fn dns(&self, args: &[&str]) -> TestCommand {
        tool("pysk-dns")
            .config_dir(&self.config)
            .args(["--host", "ns.example.net"])
            .args(args)
    }

    fn zone(&self, zone: &str) -> Vec<u8> {
        fs::read(self.path("zones").join(format!("db.{zone}"))).expect("zone file")
    }

    fn serial(&self, zone: &str) -> u32 {
        let out = self.dns(&["serial", zone]).succeeds();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a serial")
    }

    /// `named` serving the include, once it answers for every zone.
    fn named(&self) -> Named {
        let named = Named::start(&self.path("named"), &self.path("named.conf.pysk"))
            .expect("named is installed");
        named.serving(&["example.org", "example.com", "example.net"]);
        named
    }
}

fn example(server: &str) -> String {
    fs::read_to_string(examples().join(format!("dns/{server}.example.net.json")))
        .expect("example document")
}

/// `server`'s example document with `edit` applied to its JSON.
fn edited(server: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(&example(server)).expect("json");
    edit(&mut doc);
    doc.to_string()
}

/// The serial `named` serves for `zone`.
fn served_serial(named: &Named, zone: &str) -> u32 {
    named.query(zone, "SOA")[0]
        .split(' ')
        .nth(2)
        .and_then(|s| s.parse().ok())
        .expect("a served serial")
}

#[test]
fn a_document_emptying_its_zones_is_held_back_unless_forced() {
    let Some(fleet) = Fleet::built() else { return };
    let before = (fleet.zone("example.org"), fleet.zone("example.net"));
    let empty = edited("web1", |doc| {
        for zone in doc["zones"].as_array_mut().expect("zones") {
            zone["records"] = serde_json::json!([]);
        }
    });
    fleet.serve("web1", &empty);
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "pysk-dns: web1.example.net: held back: the new document drops 13 of its 13 records: \
         2 zones with 13 records before, 2 with 0 after; keeping its snapshot (--force accepts it)\n"
    );
    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        (fleet.zone("example.org"), fleet.zone("example.net")),
        before
    );
    let named = fleet.named();
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("example.org", "MX"), ["10 mail.example.org."]);
    drop(named);

    // Fewer records, not none: still more than half gone.
    let fewer = edited("web1", |doc| {
        doc["zones"][0]["records"]
            .as_array_mut()
            .expect("records")
            .truncate(2);
    });
    fleet.serve("web1", &fewer);
    let out = fleet.dns(&["-q", "fetch", "--json"]).output();
    assert_eq!(code(&out), 1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json");
    assert_eq!(doc["servers"][0]["fate"], "held_back");
    assert_eq!(
        doc["servers"][0]["reason"],
        "the new document drops 8 of its 13 records: 2 zones with 13 records before, 2 with 5 after"
    );

    let out = fleet.dns(&["-q", "fetch", "--force"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    fleet.dns(&["-q", "build"]).succeeds();
    let named = fleet.named();
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("example.org", "MX"), Vec::<String>::new());
}

#[test]
fn records_bind_refuses_are_refused_and_zone_files_checked_before_install() {
    let Some(fleet) = Fleet::built() else { return };
    let com = fleet.zone("example.com");
    // A wildcard NS owner rejects the document, naming zone and record.
    let wildcard = edited("web2", |doc| {
        doc["zones"][1]["records"]
            .as_array_mut()
            .expect("records")
            .push(serde_json::json!({"name": "*", "type": "NS", "value": "ns.evil.test."}));
    });
    fleet.serve("web2", &wildcard);
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1);
    assert_stderr(
        &out,
        "web2.example.net: document rejected (zone \"example.com\": record 4 (\"*\" \"NS\"): \
         a wildcard owner cannot have NS records (BIND refuses the zone))",
    );

    // An empty TXT is written as one empty string, and served.
    let empty_txt = edited("web2", |doc| {
        doc["zones"][1]["records"]
            .as_array_mut()
            .expect("records")
            .push(serde_json::json!({"name": "empty", "type": "TXT", "value": ""}));
    });
    fleet.serve("web2", &empty_txt);
    fleet.dns(&["-q", "fetch"]).succeeds();
    fleet.dns(&["-q", "build"]).succeeds();
    let text = String::from_utf8(fleet.zone("example.com")).expect("utf-8");
    assert!(
        text.contains("empty\t7200\tIN\tTXT\t\"\"\t; web2.example.net\n"),
        "{text}"
    );
    let named = fleet.named();
    assert_eq!(named.query("empty.example.com", "TXT"), ["\"\""]);
    drop(named);
    let com = {
        assert_ne!(fleet.zone("example.com"), com);
        fleet.zone("example.com")
    };

    // A name server inside the zone without an address record: the zone
    // keeps its file; web1's change is installed.
    let no_glue = edited("web2", |doc| {
        doc["zones"][1]["ns"] = serde_json::json!(["ns1.example.com."]);
    });
    fleet.serve("web2", &no_glue);
    fleet.serve("web1", &example("web1").replace("192.0.2.25", "192.0.2.26"));
    fleet.dns(&["-q", "fetch"]).succeeds();
    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "pysk-dns: example.com: not written: its name server ns1.example.com. (from \
         web2.example.net) lies inside the zone without an address record in it; its previous \
         file stays\n"
    );
    assert_eq!(fleet.zone("example.com"), com);

    // What named-checkzone refuses (here a stricter checker, as an admin
    // may name one: an MX pointing at a CNAME) keeps the previous file,
    // with the checker's message; the other zones are installed.
    let checker = fleet.path("strict-checkzone");
    let real = require("named-checkzone", "bind9-utils").expect("named-checkzone");
    fs::write(
        &checker,
        format!("#!/bin/sh\nexec {} -M fail \"$@\"\n", real.display()),
    )
    .expect("write checker");
    fs::set_permissions(&checker, fs::Permissions::from_mode(0o755)).expect("chmod");
    fleet.switch(&[("dns_checkzone", checker.display().to_string())]);
    let to_cname = edited("web2", |doc| {
        let records = doc["zones"][1]["records"].as_array_mut().expect("records");
        records.push(serde_json::json!({"name": "alias", "type": "CNAME", "value": "www"}));
        records
            .push(serde_json::json!({"name": "@", "type": "MX", "value": "alias", "priority": 5}));
    });
    fleet.serve("web2", &to_cname);
    fleet.serve("web1", &example("web1").replace("192.0.2.25", "192.0.2.27"));
    fleet.dns(&["-q", "fetch"]).succeeds();
    // A dry run checks too (named-checkzone reads the file from its
    // stdin) and says what the build will say.
    let dry = fleet.dns(&["-q", "build", "--dry-run"]).output();
    assert_eq!(code(&dry), 1);
    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&dry), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "pysk-dns: example.com: not written: {} refuses it: zone example.com/IN: \
             example.com/MX 'alias.example.com' is a CNAME (illegal)",
            checker.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("(its records come from web2.example.net); its previous file stays\n"),
        "{err}"
    );
    assert_eq!(fleet.zone("example.com"), com);
    let named = fleet.named();
    assert_eq!(named.query("mail.example.org", "A"), ["192.0.2.27"]);
    assert_eq!(
        named.query("alias.example.com", "CNAME"),
        Vec::<String>::new()
    );
    assert_eq!(named.query("empty.example.com", "TXT"), ["\"\""]);
}

#[test]
fn serials_never_go_back_with_an_older_state() {
    let Some(fleet) = Fleet::built() else { return };
    let state = fleet.path("state/serials.json");
    let old_state = fs::read(&state).expect("serials.json");
    let first = fleet.serial("example.com");
    for last in [21, 22] {
        fleet.serve(
            "web2",
            &example("web2").replace("\"192.0.2.20\"}", &format!("\"192.0.2.{last}\"}}")),
        );
        fleet.dns(&["-q", "fetch"]).succeeds();
        fleet.dns(&["-q", "build"]).succeeds();
    }
    let in_file = fleet.serial("example.com");
    assert_eq!(in_file, first + 2);
    let named = fleet.named();
    assert_eq!(served_serial(&named, "example.com"), in_file);

    // serials.json restored from the backup taken before those changes.
    fs::write(&state, &old_state).expect("restore serials.json");
    fleet.switch(&[
        ("dns_check_server", named.addr.to_string()),
        ("dns_check_timeout", "10".to_owned()),
        ("dns_reload_command", format!("kill -HUP {}", named.pid())),
    ]);
    fleet.serve(
        "web2",
        &example("web2").replace("\"192.0.2.20\"}", "\"192.0.2.23\"}"),
    );
    fleet.dns(&["-q", "fetch"]).succeeds();
    let out = fleet.dns(&["-q", "build", "--reload"]).output();
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), named.log_text());
    let new = fleet.serial("example.com");
    assert_eq!(new, in_file + 1, "above the file's {in_file}");
    let text = String::from_utf8(fleet.zone("example.com")).expect("utf-8");
    assert!(text.contains(&format!("( {new} ")), "{text}");
    assert_eq!(served_serial(&named, "example.com"), new);
    assert_eq!(named.query("www.example.com", "A"), ["192.0.2.23"]);
    // Unchanged content with the older state: the file's serial stays.
    fs::write(&state, &old_state).expect("restore serials.json");
    let before = fleet.zone("example.com");
    fleet.dns(&["-q", "build"]).succeeds();
    assert_eq!(fleet.zone("example.com"), before);
    assert_eq!(fleet.serial("example.com"), new);
}

#[test]
fn a_damaged_snapshot_blocks_only_its_server() {
    let Some(fleet) = Fleet::built() else { return };
    let snapshot = fleet.path("state/snapshots/web2.example.net.json");
    let bytes = fs::read(&snapshot).expect("snapshot");
    let truncated = &bytes[..bytes.len() / 2];
    fs::write(&snapshot, truncated).expect("truncate");
    let (org, com) = (fleet.zone("example.org"), fleet.zone("example.com"));

    // web2 does not answer; web1 changes a zone of its own.
    fleet.http.set("/web2.json", Reply::Status(503));
    fleet.serve(
        "web1",
        &example("web1").replace("\"www.example.org.\"", "\"www.example.com.\""),
    );
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "pysk-dns: web2.example.net: snapshot {} is damaged (EOF while parsing",
            snapshot.display()
        )) && err
            .contains("; its zones keep their files until a fetch succeeds; unreachable (HTTP 503"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "web1 fetched: {err}");
    assert_eq!(fs::read(&snapshot).expect("snapshot"), truncated);

    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "pysk-dns: web2.example.net: snapshot {} is damaged (EOF while parsing",
            snapshot.display()
        )),
        "{err}"
    );
    assert!(err.contains("example.com: not written: it holds records of web2.example.net, whose snapshot is damaged; its previous file stays\n"), "{err}");
    assert!(err.contains("example.org: not written: it holds records of web2.example.net, whose snapshot is damaged; its previous file stays\n"), "{err}");
    assert_eq!(fleet.zone("example.org"), org, "not rewritten without shop");
    assert_eq!(fleet.zone("example.com"), com, "not removed as stale");
    let named = fleet.named();
    assert_eq!(
        named.query("www.example.net", "CNAME"),
        ["www.example.com."],
        "web1's own zone is built"
    );
    assert_eq!(named.query("www.example.com", "A"), ["192.0.2.20"]);
    assert_eq!(named.query("shop.example.org", "A"), ["192.0.2.20"]);
    drop(named);

    // web2 answers again: its snapshot is replaced, the damaged one kept
    // aside, and its zones are built again.
    fleet.serve(
        "web2",
        &example("web2").replace("\"192.0.2.20\"}", "\"192.0.2.29\"}"),
    );
    let out = fleet.dns(&["-q", "fetch"]).output();
    assert_eq!(code(&out), 1, "the damage is reported once more");
    assert_stderr(&out, "set aside as ");
    assert_stderr(&out, "and replaced; updated, 2 zones\n");
    let aside: Vec<_> = fs::read_dir(fleet.path("state/snapshots"))
        .expect("snapshots")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("web2.example.net.json.damaged-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(fs::read(aside[0].path()).expect("aside"), truncated);
    fleet.dns(&["-q", "fetch"]).succeeds();
    let out = fleet.dns(&["-q", "build"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let named = fleet.named();
    assert_eq!(named.query("www.example.com", "A"), ["192.0.2.29"]);
    assert_eq!(named.query("shop.example.org", "A"), ["192.0.2.29"]);
}
