//! End-to-end tests of who may publish which names in `pysk-dns`: public
//! suffixes and special-use zones refused, another server's names
//! protected by their first publisher or by `zones=` lists, and the
//! legitimate sharing (web and mail split, round robin, a nested
//! subdomain, a migration) still served by a real `named`.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use pysk_tests::bind::{Named, check_conf};
use pysk_tests::http::{HttpServer, Reply};
use pysk_tests::{
    TempDir, TestCommand, code, require, scratch, secret_file, stderr, test_certificate, tool,
    write_switches,
};

const USER: &str = "pysk";
const PASSWORD: &str = "s3cret-dns-pw";
const SERVERS: [&str; 3] = ["web1", "web2", "mail"];

/// Three managed servers publishing documents over HTTPS.
struct Fleet {
    dir: TempDir,
    http: HttpServer,
    config: PathBuf,
}

impl Fleet {
    /// The fleet, each server publishing no zone yet; `None` outside CI
    /// without the programs needed.
    fn new(extra_switches: &[(&'static str, String)]) -> Option<Fleet> {
        require("named", "bind9")?;
        let dir = scratch();
        let (cert, key) = test_certificate(dir.path())?;
        let http = HttpServer::start(Some((&cert, &key)), Some((USER, PASSWORD)));
        let fleet = Fleet {
            config: dir.path().join("etc"),
            http,
            dir,
        };
        for server in SERVERS {
            fleet.serve(server, "");
        }
        fs::create_dir_all(&fleet.config).expect("config dir");
        fleet.write_hosts(&[]);
        secret_file(&fleet.path("dns.password"), PASSWORD);
        let mut switches = vec![
            ("dns_api_user", USER.to_owned()),
            ("dns_api_password_file", fleet.show("dns.password")),
            ("dns_ca_file", fleet.show("cert.pem")),
            ("dns_state_dir", fleet.show("state")),
            ("dns_zone_dir", fleet.show("zones")),
            ("dns_include", fleet.show("named.conf.pysk")),
        ];
        switches.extend_from_slice(extra_switches);
        write_switches(&fleet.config, &switches);
        Some(fleet)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn show(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// `server` (web1, web2, mail) publishes `zones`, the JSON of its
    /// zone list.
    fn serve(&self, server: &str, zones: &str) {
        let body =
            format!(r#"{{"version": 1, "server": "{server}.example.net", "zones": [{zones}]}}"#);
        self.http
            .set(&format!("/{server}.json"), Reply::Body(body.into()));
    }

    /// The inventory: every server, with `key=value` settings given by
    /// `settings` as (server, text).
    fn write_hosts(&self, settings: &[(&str, &str)]) {
        let mut hosts = String::new();
        for (i, server) in SERVERS.iter().enumerate() {
            let url = self.http.url(&format!("/{server}.json"));
            let extra: Vec<&str> = settings
                .iter()
                .filter(|(s, _)| s == server)
                .map(|(_, t)| *t)
                .collect();
            hosts.push_str(&format!(
                "{server}.example.net 192.0.2.{} url={url} {}\n",
                i + 1,
                extra.join(" ")
            ));
        }
        fs::write(self.config.join("hosts"), hosts).expect("write hosts");
    }

    fn dns(&self, args: &[&str]) -> TestCommand {
        tool("pysk-dns")
            .config_dir(&self.config)
            .args(["--host", "ns.example.net"])
            .args(args)
    }

    /// Fetches every document (the shrink guard forced) and builds.
    fn build(&self, args: &[&str]) -> Output {
        self.dns(&["-q", "fetch", "--force"]).succeeds();
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        self.dns(&all).output()
    }

    /// A `named` serving the include, once it answers for `zones`, its
    /// configuration accepted by `named-checkconf`.
    fn named(&self, zones: &[&str]) -> Named {
        let named = Named::start(&self.path("named"), &self.path("named.conf.pysk"))
            .expect("named is installed");
        check_conf(&named.conf);
        named.serving(zones);
        named
    }
}

/// A zone's JSON: name, then records as (name, type, value, priority).
fn zone(name: &str, records: &[(&str, &str, &str)]) -> String {
    let records: Vec<String> = records
        .iter()
        .map(|(n, t, v)| match v.split_once(' ') {
            Some((prio, host)) if *t == "MX" => {
                format!(r#"{{"name": "{n}", "type": "MX", "value": "{host}", "priority": {prio}}}"#)
            }
            _ => format!(r#"{{"name": "{n}", "type": "{t}", "value": "{v}"}}"#),
        })
        .collect();
    format!(
        r#"{{"name": "{name}", "ns": ["ns1.example.net.", "ns2.example.net."], "records": [{}]}}"#,
        records.join(", ")
    )
}

/// Asserts the run's stderr is exactly `lines` (in any order).
fn assert_lines(out: &Output, lines: &[&str]) {
    let err = stderr(out);
    let mut got: Vec<&str> = err.lines().collect();
    let mut want = lines.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{err}");
}

const WARN: &str = "pysk-dns: ";

#[test]
fn public_suffixes_special_use_and_reserved_zones_are_never_emitted() {
    let reserved = ("dns_reserved_zones", "corp.example.net".to_owned());
    let Some(fleet) = Fleet::new(&[reserved]) else {
        return;
    };
    fleet.serve("web1", &zone("example.org", &[("www", "A", "192.0.2.10")]));
    let hostile = [
        zone("com", &[("www.google", "A", "203.0.113.66")]),
        zone("co.uk", &[("www.bbc", "A", "203.0.113.66")]),
        zone("localhost", &[("@", "A", "127.0.0.1")]),
        zone("www.corp.example.net", &[("@", "A", "203.0.113.66")]),
        zone("example.com", &[("www", "A", "192.0.2.20")]),
    ];
    fleet.serve("web2", &hostile.join(", "));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let w = "from web2.example.net refused";
    assert_lines(
        &out,
        &[
            &format!("{WARN}com: zone {w}: a public suffix; left out"),
            &format!("{WARN}co.uk: zone {w}: a public suffix; left out"),
            &format!(
                "{WARN}localhost: zone {w}: localhost is a special-use or locally served zone; \
                 left out"
            ),
            &format!(
                "{WARN}www.corp.example.net: zone {w}: corp.example.net is reserved by \
                 dns_reserved_zones; left out"
            ),
        ],
    );
    for refused in ["com", "co.uk", "localhost", "www.corp.example.net"] {
        assert!(!fleet.path(&format!("zones/db.{refused}")).exists());
    }
    let named = fleet.named(&["example.org", "example.com"]);
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("www.example.com", "A"), ["192.0.2.20"]);
    assert_eq!(named.query("www.google.com", "A"), Vec::<String>::new());
    assert_eq!(named.query("com", "SOA"), Vec::<String>::new());
}

/// web1's example.org as the victim publishes it.
fn victim() -> String {
    zone(
        "example.org",
        &[
            ("www", "A", "192.0.2.10"),
            ("www", "AAAA", "2001:db8::10"),
            ("@", "MX", "10 mail.example.org."),
            ("mail", "A", "192.0.2.25"),
            ("ftp", "A", "192.0.2.30"),
        ],
    )
}

#[test]
fn another_servers_names_are_refused_naming_both_servers() {
    let Some(fleet) = Fleet::new(&[]) else { return };
    fleet.serve("web1", &victim());
    fleet.serve("web2", &zone("example.com", &[("www", "A", "192.0.2.20")]));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let owners = fs::read_to_string(fleet.path("state/owners.json")).expect("owners");
    assert!(
        owners.contains(r#""www.example.org A": "web1.example.net""#),
        "{owners}"
    );

    let attack = [
        zone(
            "example.org",
            &[
                ("www", "A", "203.0.113.66"),
                ("@", "MX", "0 mx.evil.test."),
                ("mail", "NS", "ns.evil.test."),
                ("ftp", "CNAME", "evil.example.com."),
            ],
        ),
        zone("www.example.org", &[("@", "AAAA", "2001:db8::66")]),
        zone("example.com", &[("www", "A", "192.0.2.20")]),
    ];
    fleet.serve("web2", &attack.join(", "));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let differs = |rrset: &str| {
        format!(
            "{WARN}{rrset} from web2.example.net differs from that of web1.example.net, \
             which owns it; left out, web1.example.net's served"
        )
    };
    let above = |rrset: &str, theirs: &str| {
        format!(
            "{WARN}{rrset} from web2.example.net lies at or above {theirs} from \
             web1.example.net; left out, web1.example.net's served"
        )
    };
    assert_lines(
        &out,
        &[
            &differs("www.example.org A"),
            &differs("www.example.org AAAA"),
            &differs("example.org MX"),
            &above("mail.example.org NS", "mail.example.org A"),
            &above("ftp.example.org CNAME", "ftp.example.org A"),
        ],
    );
    let named = fleet.named(&["example.org", "example.com"]);
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("www.example.org", "AAAA"), ["2001:db8::10"]);
    assert_eq!(named.query("example.org", "MX"), ["10 mail.example.org."]);
    assert_eq!(named.query("mail.example.org", "A"), ["192.0.2.25"]);
    assert_eq!(named.query("mail.example.org", "NS"), Vec::<String>::new());
    assert_eq!(named.query("ftp.example.org", "A"), ["192.0.2.30"]);
    assert_eq!(
        named.query("ftp.example.org", "CNAME"),
        Vec::<String>::new()
    );
    assert_eq!(named.query("www.example.com", "A"), ["192.0.2.20"]);
}

#[test]
fn web_and_mail_split_and_a_nested_subdomain_are_served() {
    let Some(fleet) = Fleet::new(&[]) else { return };
    fleet.serve(
        "web1",
        &zone(
            "example.org",
            &[("@", "A", "192.0.2.10"), ("www", "A", "192.0.2.10")],
        ),
    );
    fleet.serve(
        "mail",
        &zone(
            "example.org",
            &[
                ("@", "MX", "10 mail.example.org."),
                ("mail", "A", "192.0.2.25"),
                ("@", "TXT", "v=spf1 mx -all"),
            ],
        ),
    );
    fleet.serve(
        "web2",
        &zone(
            "shop.example.org",
            &[
                ("@", "A", "192.0.2.20"),
                ("www", "CNAME", "shop.example.org."),
            ],
        ),
    );
    let out = fleet.build(&["-v"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("warning"), "{err}");
    assert!(
        err.contains(
            "shop.example.org A: published by web2.example.net at or below example.org, \
             which mail.example.net, web1.example.net publishes; accepted (a zones= list \
             closes this)"
        ),
        "{err}"
    );
    let named = fleet.named(&["example.org"]);
    assert_eq!(named.query("example.org", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("example.org", "MX"), ["10 mail.example.org."]);
    assert_eq!(named.query("mail.example.org", "A"), ["192.0.2.25"]);
    assert_eq!(named.query("example.org", "TXT"), ["\"v=spf1 mx -all\""]);
    assert_eq!(named.query("shop.example.org", "A"), ["192.0.2.20"]);
    assert_eq!(
        named.query("www.shop.example.org", "CNAME"),
        ["shop.example.org."]
    );
}

#[test]
fn round_robin_across_listed_servers_and_the_list_closes_the_door() {
    let Some(fleet) = Fleet::new(&[]) else { return };
    fleet.write_hosts(&[("web1", "zones=example.org"), ("web2", "zones=example.org")]);
    fleet.serve("web1", &zone("example.org", &[("www", "A", "192.0.2.10")]));
    fleet.serve("web2", &zone("example.org", &[("www", "A", "192.0.2.11")]));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let owners = fs::read_to_string(fleet.path("state/owners.json")).unwrap_or_default();
    assert!(
        !owners.contains("example.org"),
        "listed names have no first publisher"
    );

    // The mail server has no list: example.org is closed to it, even for
    // a new name; web2 cannot leave its own list.
    fleet.serve(
        "mail",
        &zone(
            "example.org",
            &[("@", "MX", "0 mx.evil.test."), ("new", "A", "203.0.113.66")],
        ),
    );
    let web2 = [
        zone("example.org", &[("www", "A", "192.0.2.11")]),
        zone("example.com", &[("www", "A", "203.0.113.66")]),
    ];
    fleet.serve("web2", &web2.join(", "));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_lines(
        &out,
        &[
            &format!(
                "{WARN}example.org: zone from mail.example.net refused: example.org is \
                 given to web1.example.net, web2.example.net by zones=; left out"
            ),
            &format!(
                "{WARN}example.com: zone from web2.example.net refused: outside its zones= \
                 list; left out"
            ),
        ],
    );
    assert!(!fleet.path("zones/db.example.com").exists());
    let named = fleet.named(&["example.org"]);
    assert_eq!(
        named.query("www.example.org", "A"),
        ["192.0.2.10", "192.0.2.11"]
    );
    assert_eq!(named.query("example.org", "MX"), Vec::<String>::new());
    assert_eq!(named.query("new.example.org", "A"), Vec::<String>::new());
}

#[test]
fn a_migration_hands_ownership_over_and_is_reported() {
    let Some(fleet) = Fleet::new(&[]) else { return };
    fleet.serve("web1", &zone("example.org", &[("www", "A", "192.0.2.10")]));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // While the old server still publishes, the new one is refused.
    fleet.serve("web2", &zone("example.org", &[("www", "A", "192.0.2.66")]));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_lines(
        &out,
        &[&format!(
            "{WARN}www.example.org A from web2.example.net differs from that of \
             web1.example.net, which owns it; left out, web1.example.net's served"
        )],
    );

    // The old server stops publishing: a dry run shows the handover and
    // changes nothing, the build hands it over.
    fleet.serve("web1", "");
    fleet.dns(&["-q", "fetch", "--force"]).succeeds();
    let owners = fleet.path("state/owners.json");
    let before = fs::read(&owners).expect("owners");
    let out = fleet.dns(&["build", "--dry-run"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let diff = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        diff.contains(r#"+    "www.example.org A": "web2.example.net""#),
        "{diff}"
    );
    assert_eq!(fs::read(&owners).expect("owners"), before);
    let out = fleet.dns(&["build"]).output();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "www.example.org A: web1.example.net no longer publishes it; now owned by \
             web2.example.net"
        ),
        "{err}"
    );
    let owners = fs::read_to_string(&owners).expect("owners");
    assert!(
        owners.contains(r#""www.example.org A": "web2.example.net""#),
        "{owners}"
    );
    let named = fleet.named(&["example.org"]);
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.66"]);
}

#[test]
fn the_inventorys_server_names_belong_to_the_inventory() {
    let switches = [
        ("dns_servers_zone", "example.net".to_owned()),
        ("dns_ns", "ns1.example.com ns2.example.com".to_owned()),
    ];
    let Some(fleet) = Fleet::new(&switches) else {
        return;
    };
    let attack = zone(
        "example.net",
        &[
            ("web1", "A", "203.0.113.66"),
            ("mail", "CNAME", "evil.example.com."),
            ("shop", "A", "192.0.2.40"),
        ],
    );
    fleet.serve("web2", &attack);
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_lines(
        &out,
        &[
            &format!(
                "{WARN}web1.example.net A from web2.example.net differs from that of \
                 inventory, which owns it; left out, inventory's served"
            ),
            &format!(
                "{WARN}mail.example.net CNAME from web2.example.net lies at or above \
                 mail.example.net A from inventory; left out, inventory's served"
            ),
        ],
    );
    let named = fleet.named(&["example.net"]);
    assert_eq!(named.query("web1.example.net", "A"), ["192.0.2.1"]);
    assert_eq!(named.query("mail.example.net", "A"), ["192.0.2.3"]);
    assert_eq!(
        named.query("mail.example.net", "CNAME"),
        Vec::<String>::new()
    );
    assert_eq!(named.query("shop.example.net", "A"), ["192.0.2.40"]);
}

#[test]
fn a_zones_entry_naming_a_public_suffix_or_reserved_zone_is_not_listed() {
    let reserved = ("dns_reserved_zones", "corp.example.net".to_owned());
    let Some(fleet) = Fleet::new(&[reserved]) else {
        return;
    };
    fleet.write_hosts(&[("web2", "zones=com,corp.example.net,example.org")]);
    fleet.serve("web1", &zone("example.com", &[("www", "A", "192.0.2.10")]));
    let web2 = [
        zone("example.com", &[("www", "A", "203.0.113.66")]),
        zone("example.org", &[("www", "A", "192.0.2.20")]),
    ];
    fleet.serve("web2", &web2.join(", "));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_lines(
        &out,
        &[
            &format!(
                "{WARN}web2.example.net (inventory line 2): zones= \"com\": a public suffix; \
                 not listed"
            ),
            &format!(
                "{WARN}web2.example.net (inventory line 2): zones= \"corp.example.net\": \
                 corp.example.net is reserved by dns_reserved_zones; not listed"
            ),
            &format!(
                "{WARN}example.com: zone from web2.example.net refused: outside its zones= \
                 list; left out"
            ),
        ],
    );
    let named = fleet.named(&["example.com", "example.org"]);
    assert_eq!(named.query("www.example.com", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.20"]);
}

#[test]
fn a_new_parent_zone_does_not_absorb_another_servers_zone() {
    let Some(fleet) = Fleet::new(&[]) else { return };
    fleet.serve(
        "web1",
        &zone("shop.example.org", &[("@", "A", "192.0.2.10")]),
    );
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    fleet.serve("web2", &zone("example.org", &[("www", "A", "192.0.2.20")]));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_lines(
        &out,
        &[&format!(
            "{WARN}example.org: zone from web2.example.net refused: a new zone above the \
             zone shop.example.org of web1.example.net, which owns names in it; left out"
        )],
    );
    assert!(fleet.path("zones/db.shop.example.org").exists());
    assert!(!fleet.path("zones/db.example.org").exists());
    let named = fleet.named(&["shop.example.org"]);
    assert_eq!(named.query("shop.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(named.query("www.example.org", "A"), Vec::<String>::new());
}

#[test]
fn a_handover_to_servers_that_differ_is_held() {
    let Some(fleet) = Fleet::new(&[]) else { return };
    let www = |a: &str| zone("example.org", &[("www", "A", a), ("@", "TXT", "shared")]);
    fleet.serve("web1", &www("192.0.2.10"));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    fleet.serve("web1", "");
    fleet.serve("web2", &www("192.0.2.20"));
    fleet.serve("mail", &www("192.0.2.30"));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_lines(
        &out,
        &[&format!(
            "{WARN}www.example.org A: web1.example.net no longer publishes it and \
             web2.example.net, mail.example.net publish different data; held, left out"
        )],
    );
    let owners = fs::read_to_string(fleet.path("state/owners.json")).expect("owners");
    assert!(
        owners.contains(r#""www.example.org A": "web1.example.net""#),
        "{owners}"
    );
    let named = fleet.named(&["example.org"]);
    assert_eq!(named.query("www.example.org", "A"), Vec::<String>::new());
    assert_eq!(named.query("example.org", "TXT"), ["\"shared\""]);
}

#[test]
fn the_owners_ttl_is_served_whatever_the_others_give() {
    let Some(fleet) = Fleet::new(&[]) else { return };
    let with_ttl = |zone_ttl: u32, rr_ttl: u32| {
        format!(
            r#"{{"name": "example.org", "ttl": {zone_ttl}, "ns": ["ns1.example.net."], "records": [{{"name": "www", "type": "A", "value": "192.0.2.10", "ttl": {rr_ttl}}}]}}"#
        )
    };
    fleet.serve("web1", &with_ttl(3600, 600));
    fleet.serve("web2", &with_ttl(0, 0));
    let out = fleet.build(&["-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let file = fs::read_to_string(fleet.path("zones/db.example.org")).expect("zone file");
    assert!(file.contains("$TTL 3600\n"), "{file}");
    let named = fleet.named(&["example.org"]);
    assert_eq!(named.query("www.example.org", "A"), ["192.0.2.10"]);
    assert_eq!(ttl(&named, "www.example.org", "A"), ["600"]);
}

/// The TTLs `named` answers with for `name`'s `rtype` records.
fn ttl(named: &Named, name: &str, rtype: &str) -> Vec<String> {
    let dig = require("dig", "bind9-dnsutils").expect("dig");
    let out = Command::new(dig)
        .arg(format!("@{}", named.addr.ip()))
        .args(["-p", &named.addr.port().to_string()])
        .args(["+norec", "+noall", "+answer", name, rtype])
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}
