//! End-to-end tests of the conventions every pysk tool keeps, for
//! `pysk-logs`: `awstats --dry-run` (the diff, the commands, nothing
//! changed), `--json` documents that start with their version, bad
//! settings named where they came from, and `--wait` on a held lock.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pysk_tests::dovecot::{Dovecot, PASSWORD, USER};
use pysk_tests::{
    bin, copy_dir, examples, require, scratch, secret_file, stderr, stdout, tool, write_switches,
};

/// The first line of every configuration `pysk-logs awstats` writes.
const MARKER: &str = "# Written by pysk-logs awstats: changes here are overwritten.";

/// The virtual hosts of the sample inbox, in order.
const VHOSTS: [&str; 3] = ["blog.example.com", "shop.example.net", "www.example.org"];

/// `pysk-logs --host web1.example.org` reading its switches from `config`.
fn pysk_logs(config: &Path) -> pysk_tests::TestCommand {
    tool("pysk-logs")
        .config_dir(config)
        .args(["--host", "web1.example.org"])
}

/// Every file below `dir`: path → bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(
                fs::read_dir(&p)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else if p.exists() {
            out.insert(p.clone(), fs::read(&p).expect("read"));
        }
    }
    out
}

/// A spool holding the split samples, and switches for awstats in a
/// scratch directory.
struct Setup {
    _dir: pysk_tests::TempDir,
    root: PathBuf,
    spool: PathBuf,
    conf: PathBuf,
    data: PathBuf,
    cache: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new(awstats: &Path, extra: &[(&str, String)]) -> Setup {
        let dir = scratch();
        let root = dir.path().to_path_buf();
        let spool = root.join("spool");
        copy_dir(&examples().join("inbox"), &spool.join("inbox"));
        let (conf, data, cache) = (
            root.join("awstats"),
            root.join("awstats-data"),
            root.join("dnscache.txt"),
        );
        let config = root.join("pysk");
        let path = |p: &Path| p.display().to_string();
        let mut switches = vec![
            ("logs_spool", path(&spool)),
            ("logs_awstats_conf_dir", path(&conf)),
            ("logs_awstats_data_dir", path(&data)),
            ("logs_dns_cache", path(&cache)),
            (
                "logs_awstats_include",
                path(&root.join("no-local-settings")),
            ),
            ("logs_awstats_pl", path(awstats)),
        ];
        switches.extend(extra.iter().cloned());
        write_switches(&config, &switches);
        Setup {
            _dir: dir,
            root,
            spool,
            conf,
            data,
            cache,
            config,
        }
    }

    /// The configuration awstats writes for `vhost`.
    fn config_text(&self, vhost: &str) -> String {
        format!(
            "{MARKER}\nLogFile=\"{} merge --archive {} {}/*.log |\"\nLogType=W\nLogFormat=1\n\
             SiteDomain=\"{vhost}\"\nHostAliases=\"www.{vhost}\"\nDirData=\"{}\"\n\
             DNSLookup=2\nDNSStaticCacheFile=\"{}\"\n",
            bin("pysk-logs").display(),
            self.spool.join("processed").display(),
            self.spool.join("pending").join(vhost).display(),
            self.data.display(),
            self.cache.display(),
        )
    }

    fn conf_path(&self, vhost: &str) -> PathBuf {
        self.conf.join(format!("awstats.{vhost}.conf"))
    }
}

/// `diff -u` of a new file holding `text`.
fn new_file_diff(path: &Path, text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = format!(
        "--- /dev/null\n+++ {}\n@@ -0,0 +1,{} @@\n",
        path.display(),
        lines.len()
    );
    for line in lines {
        out.push_str(&format!("+{line}\n"));
    }
    out
}

#[test]
fn awstats_dry_run_prints_the_diffs_and_commands_and_changes_nothing() {
    let Some(awstats) = require("/usr/lib/cgi-bin/awstats.pl", "awstats") else {
        return;
    };
    let s = Setup::new(&awstats, &[]);
    pysk_logs(&s.config).args(["-q", "split"]).succeeds();
    fs::create_dir_all(&s.conf).expect("mkdir");
    let gone = s.conf_path("gone.example");
    fs::write(&gone, format!("{MARKER}\nLogFile=\"/nowhere\"\n")).expect("stale");
    let admin = s.conf_path("admin.example");
    fs::write(&admin, "LogFile=\"/var/log/x\"\n").expect("admin's own");
    let before = (files(&s.conf), files(&s.spool));

    let out = pysk_logs(&s.config)
        .args(["awstats", "--dry-run"])
        .succeeds();
    let mut expected = String::new();
    for vhost in VHOSTS {
        expected.push_str(&new_file_diff(&s.conf_path(vhost), &s.config_text(vhost)));
    }
    expected.push_str(&format!(
        "--- {}\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-{MARKER}\n-LogFile=\"/nowhere\"\n",
        gone.display()
    ));
    for vhost in VHOSTS {
        expected.push_str(&format!(
            "would run: {} -config={vhost} -configdir={} -update\n",
            awstats.display(),
            s.conf.display()
        ));
    }
    assert_eq!(stdout(&out), expected);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!((files(&s.conf), files(&s.spool)), before, "nothing written");
    assert!(!s.data.exists(), "DirData not made");

    // With --json, the document the real run prints, marked as a dry run.
    let out = pysk_logs(&s.config)
        .args(["awstats", "--dry-run", "--json"])
        .succeeds();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let planned = json_doc(&out);
    assert_eq!(
        planned,
        serde_json::json!({"version": 1, "dry_run": true, "written": VHOSTS,
            "removed": ["gone.example"], "updated": VHOSTS, "failed": []})
    );
    assert_eq!((files(&s.conf), files(&s.spool)), before, "nothing written");
    assert!(!s.data.exists(), "DirData not made");

    // The real run does what the dry run said, writes exactly what it
    // showed, AWStats reads it, and a dry run after it has nothing to show.
    let out = pysk_logs(&s.config).args(["awstats", "--json"]).succeeds();
    let mut done = json_doc(&out);
    done["dry_run"] = serde_json::json!(true);
    assert_eq!(done, planned);
    for vhost in VHOSTS {
        assert_eq!(
            fs::read_to_string(s.conf_path(vhost)).expect("written"),
            s.config_text(vhost)
        );
        let db = s.data.join(format!("awstats052015.{vhost}.txt"));
        assert!(db.exists(), "AWStats counted {vhost}");
    }
    assert!(!gone.exists());
    let out = pysk_logs(&s.config)
        .args(["awstats", "--dry-run"])
        .succeeds();
    assert_eq!(stdout(&out), "");

    // A configuration of ours changed by hand is shown going back.
    let www = s.conf_path("www.example.org");
    let mut edited = s.config_text("www.example.org");
    edited.push_str("LevelForRobotsDetection=0\n");
    fs::write(&www, &edited).expect("edit");
    let before = files(&s.conf);
    let out = pysk_logs(&s.config)
        .args(["awstats", "--dry-run"])
        .succeeds();
    assert_eq!(
        stdout(&out),
        format!(
            "--- {p}\n+++ {p}\n@@ -7,4 +7,3 @@\n DirData=\"{}\"\n DNSLookup=2\n \
             DNSStaticCacheFile=\"{}\"\n-LevelForRobotsDetection=0\n",
            s.data.display(),
            s.cache.display(),
            p = www.display()
        )
    );
    assert_eq!(files(&s.conf), before);
    assert_eq!(
        fs::read_to_string(&admin).expect("admin"),
        "LogFile=\"/var/log/x\"\n"
    );
}

/// The `--json` document of a run: its fields in order, parsed.
fn json_doc(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    assert!(
        text.starts_with("{\n  \"version\": 1,\n"),
        "version first: {text}"
    );
    serde_json::from_str(&text).expect("one JSON document")
}

#[test]
fn fetch_awstats_and_run_print_json_documents_with_their_version() {
    let Some(awstats) = require("/usr/lib/cgi-bin/awstats.pl", "awstats") else {
        return;
    };
    let dir = scratch();
    let Some(dovecot) = Dovecot::start(&dir.path().join("dovecot"), true) else {
        return;
    };
    let mail = "Subject: web9 access.log\r\n\r\n\
        www.example.org 198.51.100.77 - - [17/May/2015:23:59:00 +0000] \"GET /m HTTP/1.1\" 200 10 \"-\" \"m\"\r\n";
    let script = format!(
        "import imaplib; m = imaplib.IMAP4('127.0.0.1', {}); m.login('{USER}', '{PASSWORD}'); \
         m.append('INBOX', None, None, {:?}.encode()); m.logout()",
        dovecot.imap_port, mail
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .expect("python3");
    assert!(status.success());
    let pw = dir.path().join("imap-password");
    secret_file(&pw, PASSWORD);
    let closed = pysk_tests::free_port_udp_tcp();
    let s = Setup::new(
        &awstats,
        &[
            (
                "logs_imap_url",
                format!("imap://{USER}@127.0.0.1:{}/INBOX", dovecot.imap_port),
            ),
            ("logs_imap_password_file", pw.display().to_string()),
            ("logs_imap_ca_file", dovecot.ca_file.display().to_string()),
            ("logs_dns_nameserver", format!("127.0.0.1:{closed}")),
            ("logs_dns_timeout", "0.2".into()),
            ("logs_dns_attempts", "1".into()),
        ],
    );

    let out = pysk_logs(&s.config).args(["fetch", "--json"]).succeeds();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let doc = json_doc(&out);
    assert_eq!(doc["messages"], 1);
    assert_eq!(doc["malformed"], 0);
    assert_eq!(doc["files"].as_array().expect("files").len(), 1);

    let out = pysk_logs(&s.config).args(["run", "--json"]).succeeds();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let doc = json_doc(&out);
    let text = stdout(&out);
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split_once('"').map(|(key, _)| key))
        .collect();
    assert_eq!(
        keys,
        ["version", "fetch", "split", "resolve", "awstats", "failed"]
    );
    assert_eq!(doc["fetch"]["messages"], 0);
    assert_eq!(doc["split"]["accepted"], 1501, "{doc}");
    assert_eq!(doc["resolve"]["resolved"], 0);
    assert_eq!(doc["awstats"]["written"], serde_json::json!(VHOSTS));
    assert_eq!(doc["awstats"]["updated"], serde_json::json!(VHOSTS));
    assert_eq!(doc["failed"], serde_json::json!([]));

    let out = pysk_logs(&s.config).args(["awstats", "--json"]).succeeds();
    let doc = json_doc(&out);
    assert_eq!(
        doc,
        serde_json::json!({"version": 1, "dry_run": false, "written": [], "removed": [],
            "updated": [], "failed": []})
    );
    assert!(s.root.join("dnscache.txt").exists());
}

#[test]
fn a_bad_switch_names_its_file_and_line_and_a_bad_option_is_a_usage_error() {
    let dir = scratch();
    let config = dir.path().join("pysk");
    let spool = dir.path().join("spool");
    write_switches(
        &config,
        &[
            ("logs_spool", spool.display().to_string()),
            ("logs_memory", "lots".into()),
        ],
    );
    let switches = config.join("serverconfig/default");
    let out = pysk_logs(&config).arg("split").fails_with(78);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-logs: {}:2: logs_memory: \"lots\": expected a size like 256M\n",
            switches.display()
        )
    );
    let out = pysk_logs(&config)
        .args(["split", "--memory", "64M", "--vhost", "foo_bar"])
        .fails_with(2);
    assert_eq!(
        stderr(&out),
        "pysk-logs: --vhost: \"foo_bar\": not a virtual host name (letters, digits, hyphens, dots)\n"
    );
    let out = pysk_logs(&config)
        .args(["split", "--memory", "12"])
        .fails_with(2);
    assert_eq!(
        stderr(&out),
        "pysk-logs: --memory: \"12\": at least 1M is needed\n"
    );
    assert!(!spool.exists(), "nothing done before the settings are good");
}

#[test]
fn wait_gives_a_held_lock_time_from_the_option_or_the_switch() {
    let dir = scratch();
    let config = dir.path().join("pysk");
    let spool = dir.path().join("spool");
    fs::create_dir_all(&spool).expect("spool");
    write_switches(&config, &[("logs_spool", spool.display().to_string())]);
    let lock = File::create(spool.join(".lock")).expect("lock file");
    lock.lock().expect("hold the spool's lock");

    let out = pysk_logs(&config).arg("split").fails_with(75);
    assert!(
        stderr(&out).contains("another run holds the lock"),
        "{}",
        stderr(&out)
    );
    let started = Instant::now();
    let out = pysk_logs(&config)
        .args(["split", "--wait", "1"])
        .fails_with(75);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-logs: {}: another run still held the lock after 1 s\n",
            spool.join(".lock").display()
        )
    );

    // The switch sets the wait for every subcommand that locks; here the
    // lock is let go while awstats waits.
    write_switches(
        &config,
        &[
            ("logs_spool", spool.display().to_string()),
            ("logs_wait", "30".into()),
            (
                "logs_awstats_conf_dir",
                dir.path().join("conf").display().to_string(),
            ),
        ],
    );
    let child = pysk_logs(&config).args(["awstats", "--dry-run"]).spawn();
    std::thread::sleep(Duration::from_millis(500));
    drop(lock);
    let out = child.wait_with_output().expect("awstats");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "no vhost, nothing to show");
}

#[test]
fn awstats_dry_run_creates_nothing_not_even_the_spool_or_its_lock() {
    let dir = scratch();
    let config = dir.path().join("pysk");
    let conf = dir.path().join("awstats");
    write_switches(
        &config,
        &[
            ("logs_awstats_conf_dir", conf.display().to_string()),
            (
                "logs_awstats_data_dir",
                dir.path().join("data").display().to_string(),
            ),
        ],
    );
    let before = tree(dir.path());
    let spool = dir.path().join("new");
    let spool_arg = spool.display().to_string();
    let out = pysk_logs(&config)
        .args(["awstats", "--spool", &spool_arg, "--dry-run"])
        .succeeds();
    assert_eq!(stdout(&out), "", "no vhost, nothing to show");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let out = pysk_logs(&config)
        .args(["awstats", "--spool", &spool_arg, "--dry-run", "--json"])
        .succeeds();
    assert_eq!(
        json_doc(&out),
        serde_json::json!({"version": 1, "dry_run": true, "written": [], "removed": [],
            "updated": [], "failed": []})
    );
    assert_eq!(tree(dir.path()), before, "no directory, no lock file");

    // A spool without its lock file is planned against as it is: a vhost
    // directory in pending/ is configured, and still nothing is made.
    fs::create_dir_all(spool.join("pending/www.example.org")).expect("pending");
    let before = tree(dir.path());
    let out = pysk_logs(&config)
        .args(["awstats", "--spool", &spool_arg, "--dry-run", "--json"])
        .succeeds();
    assert_eq!(
        json_doc(&out)["written"],
        serde_json::json!(["www.example.org"])
    );
    assert_eq!(tree(dir.path()), before, "no lock file, no spool directory");
}

/// Every path below `dir`, directories included.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(
                fs::read_dir(&p)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        }
        out.push(p);
    }
    out.sort();
    out
}

#[test]
fn config_prints_the_loaded_switches_and_warns_about_unknown_ones() {
    let dir = scratch();
    let config = dir.path().join("pysk");
    write_switches(
        &config,
        &[
            ("logs_memory", "64M".into()),
            ("logs_memroy", "128M".into()),
        ],
    );
    let out = pysk_logs(&config).arg("config").succeeds();
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-logs: {}:2: logs_memroy: not a switch this tool reads (misspelt, or \
             retired?); ignored\n",
            config.join("serverconfig/default").display()
        )
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("# effective switches for web1.example.org\n"),
        "{text}"
    );
    assert!(text.contains("\nlogs_memory=\"64M\"  # "), "{text}");
    assert!(text.contains("\nlogs_memroy=\"128M\"  # "), "{text}");
}
