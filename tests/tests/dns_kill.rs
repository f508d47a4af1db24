//! `kill -9` of `pysk-dns build`, over and over, in the middle of a large
//! build: the next undisturbed build removes every temporary file the
//! killed ones left and writes exactly what a build never disturbed
//! writes.
//!
//! A fleet of a few thousand zones is served over HTTPS by the test
//! server and fetched once into two state directories: one is built
//! undisturbed (the reference, which also times a build), the other is
//! built and killed at moments spread over that time, its zone files
//! removed before each try so that every try has the whole build to do.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use pysk_tests::http::{HttpServer, Reply};
use pysk_tests::{TempDir, TestCommand, require, scratch, secret_file, test_certificate, tool};

const USER: &str = "pysk";
const PASSWORD: &str = "s3cret-kill-pw";
const SERVERS: usize = 8;
const ZONES: usize = 3000;
/// When the killed builds are killed, as shares of an undisturbed build's
/// time: early, late, and mostly while the zone files are being staged.
/// Each build clears what the one before left, so the last kill, whose
/// leftovers the checked build must clear, is in the middle.
const KILL_AT: [f64; 8] = [0.1, 0.95, 0.25, 1.1, 0.4, 0.85, 0.55, 0.7];
/// Kills mid-build, for when the late ones found the build done.
const MORE_AT: [f64; 4] = [0.3, 0.45, 0.6, 0.5];
/// Extra tries at these shares when a loaded machine made the last kill
/// miss the staging (which follows the zone files' checks, late).
const RETRY_AT: [f64; 8] = [0.5, 0.6, 0.65, 0.75, 0.8, 0.88, 0.93, 0.97];

/// What a fleet's document says: `SERVERS` servers sharing `ZONES` zones.
fn documents() -> Vec<(String, String)> {
    let mut zones: Vec<Vec<serde_json::Value>> = vec![Vec::new(); SERVERS];
    for z in 0..ZONES {
        let mut records = vec![
            serde_json::json!({"name": "@", "type": "A", "value": format!("192.0.2.{}", z % 250 + 1)}),
            serde_json::json!({"name": "@", "type": "MX", "value": "mail", "priority": 10}),
            serde_json::json!({"name": "@", "type": "TXT", "value": "v=spf1 mx -all"}),
            serde_json::json!({"name": "mail", "type": "A", "value": format!("198.51.100.{}", z % 250 + 1)}),
            serde_json::json!({"name": "www", "type": "CNAME", "value": "@"}),
            serde_json::json!({"name": "@", "type": "AAAA", "value": format!("2001:db8::{z:x}")}),
        ];
        records.extend((0..6).map(|i| {
            serde_json::json!({"name": format!("host{i}"), "type": "A",
                               "value": format!("203.0.113.{}", i + 1), "ttl": 300})
        }));
        zones[z % SERVERS].push(serde_json::json!({
            "name": format!("customer{z}.de"), "ttl": 3600,
            "ns": ["ns1.hosting-kill.de.", "ns2.hosting-kill.de."],
            "records": records,
        }));
    }
    zones
        .into_iter()
        .enumerate()
        .map(|(s, zones)| {
            let server = format!("web{}.hosting-kill.de", s + 1);
            let doc = serde_json::json!({"version": 1, "server": server, "zones": zones});
            (server, doc.to_string())
        })
        .collect()
}

/// The test server and one configuration per build directory.
struct Fleet {
    dir: TempDir,
    _http: HttpServer,
}

impl Fleet {
    fn new() -> Option<Fleet> {
        let dir = scratch();
        let (cert, key) = test_certificate(dir.path())?;
        let http = HttpServer::start(Some((&cert, &key)), Some((USER, PASSWORD)));
        let mut hosts = String::new();
        for (i, (server, doc)) in documents().into_iter().enumerate() {
            let path = format!("/{server}.json");
            hosts.push_str(&format!(
                "{server} 192.0.2.{} url={}\n",
                i + 1,
                http.url(&path)
            ));
            http.set(&path, Reply::Body(doc.into_bytes()));
        }
        fs::write(dir.path().join("hosts"), hosts).expect("write hosts");
        secret_file(&dir.path().join("dns.password"), PASSWORD);
        Some(Fleet { dir, _http: http })
    }

    /// `<scratch>/<name>`: a build's own state, zone directory and
    /// include, with the shared inventory.
    fn site(&self, name: &str) -> PathBuf {
        let site = self.dir.path().join(name);
        let config = site.join("config");
        fs::create_dir_all(&config).expect("config dir");
        fs::copy(self.dir.path().join("hosts"), config.join("hosts")).expect("copy hosts");
        let show = |p: PathBuf| p.display().to_string();
        pysk_tests::write_switches(
            &config,
            &[
                ("dns_api_user", USER.to_owned()),
                (
                    "dns_api_password_file",
                    show(self.dir.path().join("dns.password")),
                ),
                ("dns_ca_file", show(self.dir.path().join("cert.pem"))),
                ("dns_state_dir", show(site.join("state"))),
                ("dns_zone_dir", show(site.join("zones"))),
                ("dns_include", show(site.join("named/named.conf.pysk"))),
                // The zone check reads each zone from a pipe and writes no
                // file, so it has nothing to leave; without it a build of
                // 3,000 zones is quick enough to be killed many times.
                ("dns_checkzone", String::new()),
            ],
        );
        for dir in ["named", "zones", "tmp"] {
            fs::create_dir_all(site.join(dir)).expect("make a written directory");
        }
        site
    }
}

/// `pysk-dns` for `site`, with `<site>/tmp` as its `$TMPDIR` (where
/// nothing may be left).
fn dns(site: &Path, args: &[&str]) -> TestCommand {
    tool("pysk-dns")
        .config_dir(&site.join("config"))
        .env("TMPDIR", site.join("tmp"))
        .args(["--host", "ns.hosting-kill.de"])
        .args(args)
}

/// The directories a build writes in.
fn written(site: &Path) -> [PathBuf; 4] {
    [
        site.join("zones"),
        site.join("named"),
        site.join("state"),
        site.join("state/snapshots"),
    ]
}

/// How many temporary files of pysk's naming are in `dir` itself.
fn in_dir(dir: &Path) -> usize {
    fs::read_dir(dir)
        .expect("read a written directory")
        .filter(|e| {
            let e = e.as_ref().expect("entry");
            e.file_name().to_string_lossy().contains(".pysk-tmp.")
        })
        .count()
}

/// Every temporary file of pysk's naming under `dir`, at any depth.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().expect("file type").is_dir() {
            found.extend(leftovers(&path));
        } else if entry.file_name().to_string_lossy().contains(".pysk-tmp.") {
            found.push(path);
        }
    }
    found
}

/// The zone files of `site` by name.
fn zone_files(site: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(site.join("zones"))
        .expect("zone dir")
        .map(|e| e.expect("entry"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("read zone file"))
        })
        .collect()
}

/// Removes the zone files (not the temporary ones), so that the next
/// build writes every zone again.
fn remove_zone_files(site: &Path) {
    for entry in fs::read_dir(site.join("zones")).expect("zone dir") {
        let entry = entry.expect("entry");
        if entry.file_name().to_string_lossy().starts_with("db.") {
            fs::remove_file(entry.path()).expect("remove a zone file");
        }
    }
}

/// Removes the zone files, starts a build and `kill -9`s it after
/// `after`; whether it was killed (rather than done already).
fn kill_build(site: &Path, after: Duration) -> bool {
    remove_zone_files(site);
    let mut child = dns(site, &["-q", "build"])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pysk-dns build");
    sleep(after);
    let running = child.try_wait().expect("poll the build").is_none();
    child.kill().expect("kill -9 the build");
    child.wait().expect("reap the build");
    running
}

#[test]
fn builds_killed_with_sigkill_leave_nothing_after_the_next_build() {
    require("openssl", "openssl");
    let Some(fleet) = Fleet::new() else { return };
    let (reference, killed) = (fleet.site("reference"), fleet.site("killed"));
    dns(&reference, &["-q", "fetch"]).succeeds();
    dns(&killed, &["-q", "fetch"]).succeeds();
    let start = Instant::now();
    dns(&reference, &["-q", "build"]).succeeds();
    let took = start.elapsed();
    let expected = zone_files(&reference);
    assert_eq!(
        expected.len(),
        ZONES,
        "the reference build wrote every zone"
    );

    let mut kills = 0;
    let mut most = 0;
    for share in KILL_AT {
        kills += usize::from(kill_build(&killed, took.mul_f64(share)));
        most = most.max(leftovers(&killed).len());
    }
    // A loaded machine can make a build finish before a late kill: more
    // kills mid-build, until six have hit a running build.
    for share in MORE_AT.iter().cycle().take(12) {
        if kills >= 6 {
            break;
        }
        kills += usize::from(kill_build(&killed, took.mul_f64(*share)));
        most = most.max(leftovers(&killed).len());
    }
    for share in RETRY_AT {
        if !leftovers(&killed).is_empty() {
            break;
        }
        kills += usize::from(kill_build(&killed, took.mul_f64(share)));
    }
    assert!(
        kills >= 6,
        "only {kills} builds were still running when killed"
    );
    let left = leftovers(&killed).len();
    assert!(
        left > 0 && most > 0,
        "no kill left a temporary file ({kills} kills, a build takes {took:?})"
    );
    eprintln!("{kills} builds killed, up to {most} temporary files left, {left} before the check");

    let counts: Vec<(PathBuf, usize)> = written(&killed)
        .into_iter()
        .map(|d| {
            let n = in_dir(&d);
            (d, n)
        })
        .collect();
    let out = dns(&killed, &["-q", "build"]).succeeds();
    let err = String::from_utf8_lossy(&out.stderr);
    for (dir, n) in counts {
        let warning = format!(
            "pysk-dns: {}: removed {n} temporary file(s) left by a killed run",
            dir.display()
        );
        assert_eq!(err.contains(&warning), n > 0, "{warning:?} and: {err}");
    }
    let after = leftovers(&killed);
    assert!(after.is_empty(), "left after the next build: {after:?}");
    // The zone files were checked with named-checkzone, fed on its stdin:
    // nothing in $TMPDIR; the zone directory (compared next) holds the
    // zone files only.
    let tmp: Vec<_> = fs::read_dir(killed.join("tmp"))
        .expect("read $TMPDIR")
        .collect();
    assert!(tmp.is_empty(), "left in $TMPDIR: {tmp:?}");
    assert!(
        zone_files(&killed) == expected,
        "the zone files differ from an undisturbed build's"
    );
    let include = |site: &Path| {
        fs::read_to_string(site.join("named/named.conf.pysk"))
            .expect("include")
            .replace(&site.display().to_string(), "<site>")
    };
    assert_eq!(include(&killed), include(&reference));
}

#[test]
fn a_fetch_clears_the_snapshot_files_a_killed_fetch_left() {
    require("openssl", "openssl");
    let Some(fleet) = Fleet::new() else { return };
    let site = fleet.site("fetched");
    dns(&site, &["-q", "fetch"]).succeeds();
    let snapshots = site.join("state/snapshots");
    // Named as a fetch killed before its rename leaves it, by a process
    // that cannot exist (above any pid_max).
    let stale = snapshots.join(format!(
        ".web1.hosting-kill.de.json.pysk-tmp.{}.0",
        i32::MAX
    ));
    fs::write(&stale, "{\"fetched\": 1, \"docu").expect("plant a stale file");
    let out = dns(&site, &["-q", "fetch"]).succeeds();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "pysk-dns: {}: removed 1 temporary file(s) left by a killed run\n",
            snapshots.display()
        )
    );
    assert!(!stale.exists(), "the stale snapshot file stays");
    assert_eq!(in_dir(&snapshots), 0);
}
