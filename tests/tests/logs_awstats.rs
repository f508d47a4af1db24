//! End-to-end test of `pysk-logs awstats`: configurations written for
//! every virtual host, AWStats run through them, stale ones removed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pysk_tests::{AwstatsDb, bin, copy_dir, examples, require, scratch, tool, write_switches};

/// The first line of every configuration `pysk-logs awstats` writes: only
/// files that start with it are ever rewritten or removed.
const MARKER: &str = "# Written by pysk-logs awstats: changes here are overwritten.";

#[test]
fn configs_for_every_vhost_awstats_updated_and_stale_ones_removed() {
    let Some(awstats) = require("/usr/lib/cgi-bin/awstats.pl", "awstats") else {
        return;
    };
    let dir = scratch();
    let root = dir.path();
    let spool = root.join("spool");
    copy_dir(&examples().join("inbox"), &spool.join("inbox"));
    let (conf, data, cache, include) = (
        root.join("awstats"),
        root.join("awstats-data"),
        root.join("dnscache.txt"),
        root.join("awstats.conf.local"),
    );
    fs::write(&include, "# site-wide\nLevelForRobotsDetection=0\n").expect("include");
    let config = root.join("pysk");
    let path = |p: &Path| p.display().to_string();
    write_switches(
        &config,
        &[
            ("logs_spool", path(&spool)),
            ("logs_awstats_conf_dir", path(&conf)),
            ("logs_awstats_data_dir", path(&data)),
            ("logs_awstats_data_mode", "0750".into()),
            ("logs_awstats_data_group", "nogroup".into()),
            ("logs_dns_cache", path(&cache)),
            ("logs_awstats_include", path(&include)),
            ("logs_awstats_pl", path(&awstats)),
        ],
    );
    // An admin's own configuration and a stale one of ours.
    fs::create_dir_all(&conf).expect("mkdir");
    fs::write(
        conf.join("awstats.admin.example.conf"),
        "LogFile=\"/var/log/x\"\n",
    )
    .expect("write");
    fs::write(
        conf.join("awstats.gone.example.conf"),
        format!("{}\nLogFile=\"/nowhere\"\n", MARKER),
    )
    .expect("write");

    tool("pysk-logs")
        .config_dir(&config)
        .args(["--host", "web1.example.org", "-q", "split"])
        .succeeds();
    let out = tool("pysk-logs")
        .config_dir(&config)
        .args(["--host", "web1.example.org", "awstats"])
        .succeeds();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "pysk-logs: awstats: 3 configuration(s) written, 1 removed, 3 vhost(s) updated, 0 failed"
    );

    let mut confs: Vec<String> = fs::read_dir(&conf)
        .expect("conf dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    confs.sort();
    assert_eq!(
        confs,
        [
            "awstats.admin.example.conf",
            "awstats.blog.example.com.conf",
            "awstats.shop.example.net.conf",
            "awstats.www.example.org.conf"
        ]
    );
    let text = fs::read_to_string(conf.join("awstats.www.example.org.conf")).expect("config");
    assert_eq!(
        text,
        format!(
            "{}\nLogFile=\"{} merge --archive {} {}/*.log |\"\nLogType=W\nLogFormat=1\n\
             SiteDomain=\"www.example.org\"\nHostAliases=\"www.www.example.org\"\nDirData=\"{}\"\n\
             DNSLookup=2\nDNSStaticCacheFile=\"{}\"\nInclude \"{}\"\n",
            MARKER,
            bin("pysk-logs").display(),
            spool.join("processed").display(),
            spool.join("pending/www.example.org").display(),
            data.display(),
            cache.display(),
            include.display()
        )
    );
    let meta = fs::metadata(&data).expect("data dir");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&meta),
        65534,
        "group nogroup"
    );
    // AWStats read every line of each vhost, and the logs were archived.
    for (vhost, hits) in [
        ("www.example.org", 590),
        ("shop.example.net", 450),
        ("blog.example.com", 460),
    ] {
        let db = AwstatsDb::load(&data, "052015", vhost);
        assert_eq!(db.last_line().1, hits, "{vhost}");
        assert_eq!(
            fs::read_dir(spool.join("pending").join(vhost))
                .expect("pending")
                .count(),
            0
        );
        assert_eq!(
            fs::read_dir(spool.join("processed").join(vhost))
                .expect("processed")
                .count(),
            1
        );
    }

    // Nothing new: nothing written, AWStats not run, no file touched.
    let before = fs::metadata(conf.join("awstats.www.example.org.conf"))
        .expect("meta")
        .modified()
        .expect("mtime");
    let db_before = fs::read(data.join("awstats052015.www.example.org.txt")).expect("db");
    let out = tool("pysk-logs")
        .config_dir(&config)
        .args(["--host", "web1.example.org", "awstats"])
        .succeeds();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "pysk-logs: awstats: 0 configuration(s) written, 0 removed, 0 vhost(s) updated, 0 failed"
    );
    let after = fs::metadata(conf.join("awstats.www.example.org.conf"))
        .expect("meta")
        .modified()
        .expect("mtime");
    assert_eq!(before, after);
    assert_eq!(
        fs::read(data.join("awstats052015.www.example.org.txt")).expect("db"),
        db_before
    );
}
