//! End-to-end test of `pysk-logs run`, the nightly job: logs from the
//! spool's inbox and from a Dovecot mailbox, split, resolved against a DNS
//! server, and counted by AWStats; then a second run that changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use pysk_tests::dns::{DnsServer, Reply};
use pysk_tests::dovecot::{Dovecot, PASSWORD, USER};
use pysk_tests::{
    AwstatsDb, copy_dir, examples, require, scratch, secret_file, tool, write_switches,
};

/// Every file at or below `paths`: path → (mtime, bytes).
fn snapshot(paths: &[&Path]) -> BTreeMap<PathBuf, (SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = paths.iter().map(|d| d.to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(
                fs::read_dir(&p)
                    .expect("read dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else {
            let meta = fs::metadata(&p).expect("meta");
            out.insert(
                p.clone(),
                (meta.modified().expect("mtime"), fs::read(&p).expect("read")),
            );
        }
    }
    out
}

#[test]
fn the_nightly_job_end_to_end_and_a_second_run_changes_nothing() {
    let Some(awstats) = require("/usr/lib/cgi-bin/awstats.pl", "awstats") else {
        return;
    };
    let dir = scratch();
    let root = dir.path();
    let Some(dovecot) = Dovecot::start(&root.join("dovecot"), true) else {
        return;
    };
    // One log line arrives by mail, the samples through the inbox.
    let mail = "Subject: web9 access.log\r\n\r\n\
        www.example.org 198.51.100.77 - - [17/May/2015:23:59:00 +0000] \"GET /mailed HTTP/1.1\" 200 10 \"-\" \"m\"\r\n";
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
    let dns = DnsServer::start(
        "127.0.0.1:0".parse().expect("addr"),
        Box::new(|addr| match addr {
            IpAddr::V4(v4) => Reply::Name(
                format!("c-{}.clients.example.net", v4.to_string().replace('.', "-")),
                Duration::from_millis(5),
            ),
            IpAddr::V6(_) => Reply::NxDomain(Duration::ZERO),
        }),
        HashMap::new(),
        Duration::from_millis(100),
    )
    .expect("dns");

    let spool = root.join("spool");
    copy_dir(&examples().join("inbox"), &spool.join("inbox"));
    let (conf, data, cache) = (
        root.join("awstats"),
        root.join("awstats-data"),
        root.join("dnscache.txt"),
    );
    let vhosts = root.join("vhosts");
    fs::write(&vhosts, "www.example.org\nshop.example.net\n").expect("vhosts");
    let pw = root.join("imap-password");
    secret_file(&pw, PASSWORD);
    let config = root.join("pysk");
    let path = |p: &Path| p.display().to_string();
    write_switches(
        &config,
        &[
            ("logs_spool", path(&spool)),
            ("logs_vhosts", path(&vhosts)),
            ("logs_awstats_conf_dir", path(&conf)),
            ("logs_awstats_data_dir", path(&data)),
            ("logs_dns_cache", path(&cache)),
            ("logs_dns_nameserver", dns.addr().to_string()),
            (
                "logs_awstats_include",
                path(&root.join("no-local-settings")),
            ),
            ("logs_awstats_pl", path(&awstats)),
            (
                "logs_imap_url",
                format!("imap://{USER}@127.0.0.1:{}/INBOX", dovecot.imap_port),
            ),
            ("logs_imap_password_file", path(&pw)),
            ("logs_imap_ca_file", path(&dovecot.ca_file)),
        ],
    );
    let run = || {
        tool("pysk-logs")
            .config_dir(&config)
            .args(["--host", "logs.example.org", "-q", "run"])
            .succeeds()
    };

    let out = run();
    assert!(
        out.stderr.is_empty(),
        "quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());

    for (vhost, hits) in [("www.example.org", 591), ("shop.example.net", 450)] {
        let db = AwstatsDb::load(&data, "052015", vhost);
        assert_eq!(db.last_line().1, hits, "{vhost}");
        let visitors = db.visitors();
        assert!(!visitors.is_empty());
        assert!(
            visitors
                .iter()
                .all(|v| v.ends_with(".clients.example.net") || v.contains(':')),
            "{vhost}: {visitors:?}"
        );
        assert_eq!(
            fs::read_dir(spool.join("pending").join(vhost))
                .expect("pending")
                .count(),
            0
        );
        let archived: Vec<String> = fs::read_dir(spool.join("processed").join(vhost))
            .expect("processed")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(archived.len(), 1);
        assert!(archived[0].ends_with(".log.gz"));
    }
    let www = fs::read_to_string(data.join("awstats052015.www.example.org.txt")).expect("db");
    assert!(
        www.contains("c-198-51-100-77.clients.example.net"),
        "the mailed line was counted"
    );
    assert!(
        !data.join("awstats052015.blog.example.com.txt").exists(),
        "not in logs_vhosts"
    );

    // Nothing new: the second run changes no file anywhere.
    let dirs = [
        spool.as_path(),
        conf.as_path(),
        data.as_path(),
        cache.as_path(),
    ];
    let before = snapshot(&dirs);
    assert!(
        before.contains_key(&cache),
        "the cache is part of the snapshot"
    );
    let queries = dns
        .stats()
        .queries
        .load(std::sync::atomic::Ordering::SeqCst);
    let out = run();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&dirs), before);
    assert_eq!(
        dns.stats()
            .queries
            .load(std::sync::atomic::Ordering::SeqCst),
        queries
    );
}

#[test]
fn a_failing_stage_is_reported_and_the_others_still_run() {
    let Some(awstats) = require("/usr/lib/cgi-bin/awstats.pl", "awstats") else {
        return;
    };
    let dir = scratch();
    let root = dir.path();
    let spool = root.join("spool");
    copy_dir(&examples().join("inbox"), &spool.join("inbox"));
    let pw = root.join("imap-password");
    secret_file(&pw, "x");
    let closed = pysk_tests::free_port();
    let config = root.join("pysk");
    let path = |p: &Path| p.display().to_string();
    write_switches(
        &config,
        &[
            ("logs_spool", path(&spool)),
            ("logs_awstats_conf_dir", path(&root.join("awstats"))),
            ("logs_awstats_data_dir", path(&root.join("data"))),
            ("logs_dns_nameserver", format!("127.0.0.1:{closed}")),
            ("logs_awstats_pl", path(&awstats)),
            (
                "logs_imap_url",
                format!("imap://logs@127.0.0.1:{closed}/INBOX"),
            ),
            ("logs_imap_password_file", path(&pw)),
        ],
    );
    let out = tool("pysk-logs")
        .config_dir(&config)
        .args(["--host", "logs.example.org", "-q", "run"])
        .fails_with(1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("pysk-logs: fetch: 127.0.0.1:{closed}: ")),
        "{err}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "only the failed stage speaks: {err}"
    );
    // split, resolve (every lookup failing: no DNS server there) and
    // AWStats still ran.
    assert!(
        fs::read_dir(spool.join("inbox"))
            .expect("inbox")
            .next()
            .is_none()
    );
    assert!(root.join("data/awstats052015.www.example.org.txt").exists());
}
