//! End-to-end tests of `pysk-logs split` and `merge`: the real binary on
//! the committed samples, AWStats reading its output, and real runs killed
//! half-way.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use pysk_tests::{
    AwstatsDb, awstats_update, bin, copy_dir, examples, files_below, require, scratch, stderr,
    tool, write_switches,
};

/// A spool whose inbox holds a copy of the sample inbox.
fn sample_spool(root: &Path) -> PathBuf {
    let spool = root.join("spool");
    copy_dir(&examples().join("inbox"), &spool.join("inbox"));
    spool
}

/// Every line of every file directly in `dir`'s subdirectories (or in
/// `dir`), sorted: a multiset to compare runs by.
fn lines_below(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for rel in files_below(dir) {
        let data = fs::read(dir.join(&rel)).expect("read output");
        out.extend(
            data.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    out.sort();
    out
}

/// The JSON summary of a split run that succeeded.
fn split_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("split --json prints JSON")
}

#[test]
fn split_sorts_the_sample_inbox_per_vhost_and_sets_corrupt_lines_aside() {
    let dir = scratch();
    let spool = sample_spool(dir.path());
    let out = tool("pysk-logs")
        .args(["split", "--json", "--spool"])
        .arg(&spool)
        .arg("--vhosts")
        .arg(examples().join("vhosts"))
        .succeeds();
    let summary = split_json(&out);
    assert_eq!(summary["files"], 3);
    assert_eq!(summary["lines"], 1505);
    assert_eq!(summary["accepted"], 1500);
    assert_eq!(
        summary["vhosts"],
        serde_json::json!({"blog.example.com": 460, "shop.example.net": 450, "www.example.org": 590})
    );
    assert_eq!(
        summary["rejected"],
        serde_json::json!({"bad-date": 1, "bad-format": 1, "bad-vhost": 1, "nul-byte": 1, "truncated": 1})
    );
    assert!(out.stderr.is_empty(), "--json is quiet on stderr");

    // The inbox is empty, each vhost has one sorted UTC log, and every
    // rejected line names its file and line.
    assert!(files_below(&spool.join("inbox")).is_empty());
    let pending = files_below(&spool.join("pending"));
    assert_eq!(pending.len(), 3, "{pending:?}");
    for rel in &pending {
        let text = fs::read_to_string(spool.join("pending").join(rel)).expect("utf-8 sample");
        let mut last = String::new();
        for line in text.lines() {
            assert!(line.contains(" +0000] "), "{line}");
            let stamp = line.split('[').nth(1).expect("stamp")[..20].to_owned();
            let key = sortable(&stamp);
            assert!(key >= last, "not sorted: {line}");
            last = key;
        }
    }
    let rejected = lines_below(&spool.join("rejected"));
    assert_eq!(rejected.len(), 5);
    let reasons: Vec<String> = rejected
        .iter()
        .map(|l| {
            let text = String::from_utf8_lossy(l);
            let mut f = text.splitn(3, '\t');
            let reason = f.next().unwrap_or_default().to_owned();
            let source = f.next().unwrap_or_default();
            assert!(source.contains("/inbox/web"), "{source}");
            assert!(
                source
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .parse::<u32>()
                    .is_ok()
            );
            reason
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "bad-date",
            "bad-format",
            "bad-vhost",
            "nul-byte",
            "truncated"
        ]
    );
}

/// `17/May/2015:10:05:03` → `2015-05-17T10:05:03`, for ordering UTC stamps.
fn sortable(stamp: &str) -> String {
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months
        .iter()
        .position(|m| *m == &stamp[3..6])
        .expect("month")
        + 1;
    format!(
        "{}-{m:02}-{}T{}",
        &stamp[7..11],
        &stamp[0..2],
        &stamp[12..20]
    )
}

#[test]
fn awstats_reads_merged_split_output_with_every_hit_and_nothing_corrupt() {
    let Some(awstats) = require("/usr/lib/cgi-bin/awstats.pl", "awstats") else {
        return;
    };
    let dir = scratch();
    let spool = sample_spool(dir.path());
    let out = tool("pysk-logs")
        .args(["split", "--json", "--spool"])
        .arg(&spool)
        .succeeds();
    let summary = split_json(&out);
    let archive = spool.join("processed");
    for (vhost, hits) in summary["vhosts"].as_object().expect("vhosts") {
        let pending: Vec<String> = files_below(&spool.join("pending").join(vhost))
            .iter()
            .map(|f| {
                spool
                    .join("pending")
                    .join(vhost)
                    .join(f)
                    .display()
                    .to_string()
            })
            .collect();
        let last_stamp = pending
            .iter()
            .flat_map(|p| {
                fs::read_to_string(p)
                    .expect("pending log")
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|l| sortable(&l.split('[').nth(1).expect("stamp")[..20]))
            .max()
            .expect("lines")
            .replace(['-', 'T', ':'], "");
        let log_file = format!(
            "{} merge --archive {} {} |",
            bin("pysk-logs").display(),
            archive.display(),
            pending.join(" ")
        );
        let (out, data) = awstats_update(&awstats, dir.path(), vhost, &log_file, "DNSLookup=0\n");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Found 0 corrupted records"), "{text}");
        assert!(
            text.contains(&format!("Found {hits} new qualified records")),
            "{text}"
        );
        // AWStats' own database agrees: it read through the last line, which
        // is the latest of the vhost's lines.
        let db = AwstatsDb::load(&data, "052015", vhost);
        assert_eq!(db.last_line(), (last_stamp, hits.as_u64().expect("count")));
        // The merged inputs were archived, compressed; pending is empty.
        assert!(files_below(&spool.join("pending").join(vhost)).is_empty());
        let archived = files_below(&archive.join(vhost));
        assert_eq!(archived.len(), 1);
        assert!(archived[0].ends_with(".log.gz"));
    }
}

#[test]
fn combined_lines_need_vhost_and_unknown_vhosts_are_kept_aside() {
    let dir = scratch();
    let combined = dir.path().join("access.log");
    fs::write(
        &combined,
        "192.0.2.1 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"curl\"\n\
         192.0.2.2 - - [17/May/2015:10:05:01 +0000] \"GET /a HTTP/1.1\" 404 -\n\
         other.example 192.0.2.3 - - [17/May/2015:10:05:02 +0000] \"GET /b HTTP/1.1\" 200 1 \"-\" \"x\"\n",
    )
    .expect("write");
    let spool = dir.path().join("spool");
    let out = tool("pysk-logs")
        .args(["split", "--json", "--spool"])
        .arg(&spool)
        .arg(&combined)
        .succeeds();
    let summary = split_json(&out);
    assert_eq!(summary["rejected"], serde_json::json!({"no-vhost": 2}));
    assert!(combined.exists(), "explicit inputs are left in place");
    assert_eq!(
        stderr(&out),
        "pysk-logs: 2 line(s) name no virtual host (combined or common format) and went to \
         rejected/: split such a server's logs with --vhost NAME\n",
        "said even when the summary goes to stdout"
    );

    let spool = dir.path().join("spool2");
    let vhosts = dir.path().join("vhosts");
    fs::write(&vhosts, "www.example.org\n").expect("write");
    let out = tool("pysk-logs")
        .args(["split", "--json", "--vhost", "WWW.example.org", "--vhosts"])
        .arg(&vhosts)
        .arg("--spool")
        .arg(&spool)
        .arg(&combined)
        .succeeds();
    let summary = split_json(&out);
    assert_eq!(summary["vhosts"], serde_json::json!({"www.example.org": 2}));
    assert_eq!(summary["rejected"], serde_json::json!({"unknown-vhost": 1}));
    let log = fs::read_to_string(
        spool
            .join("pending/www.example.org")
            .join(&files_below(&spool.join("pending/www.example.org"))[0]),
    )
    .expect("output");
    assert_eq!(
        log,
        "192.0.2.2 - - [17/May/2015:10:05:01 +0000] \"GET /a HTTP/1.1\" 404 - \"-\" \"-\"\n\
         192.0.2.1 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"curl\"\n"
    );
}

#[test]
fn tiny_memory_spills_runs_and_gives_the_same_bytes() {
    let dir = scratch();
    let big = sample_spool(&dir.path().join("big"));
    let small = sample_spool(&dir.path().join("small"));
    // Make the inbox larger than 1M of sort memory: the samples four times.
    for spool in [&big, &small] {
        for n in 1..4 {
            for f in ["web1-access.log", "web2-access.log.1", "web3-access.log"] {
                fs::copy(
                    spool.join("inbox").join(f),
                    spool.join("inbox").join(format!("{n}-{f}")),
                )
                .expect("copy");
            }
        }
    }
    let a = split_json(
        &tool("pysk-logs")
            .args(["split", "--json", "--memory", "1G", "--spool"])
            .arg(&big)
            .succeeds(),
    );
    let small_run = tool("pysk-logs")
        .args(["-vv", "split", "--json", "--memory", "1M", "--spool"])
        .arg(&small)
        .succeeds();
    let b = split_json(&small_run);
    // The debug line says how many runs were spilled: more than one.
    let stderr = String::from_utf8_lossy(&small_run.stderr);
    let runs: usize = stderr
        .lines()
        .find_map(|l| l.split(", ").nth(1)?.strip_suffix(" run(s) spilled"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no spill count in: {stderr}"));
    assert!(runs > 1, "{runs} run(s) spilled");
    assert_eq!(a["accepted"], 6000);
    assert_eq!(a["vhosts"], b["vhosts"]);
    for vhost in a["vhosts"].as_object().expect("vhosts").keys() {
        let read = |spool: &Path| {
            let d = spool.join("pending").join(vhost);
            fs::read(d.join(&files_below(&d)[0])).expect("output")
        };
        assert_eq!(read(&big), read(&small), "{vhost}");
    }
    assert!(
        files_below(&small.join("tmp")).is_empty(),
        "runs are removed"
    );
}

#[test]
fn second_split_while_one_runs_exits_75() {
    let dir = scratch();
    let spool = sample_spool(dir.path());
    let lock = spool.join(".lock");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .expect("flock(1)");
    // Wait until flock holds it: a non-blocking flock of our own fails.
    for _ in 0..200 {
        let free = Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .expect("flock");
        if !free.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = tool("pysk-logs")
        .args(["split", "--spool"])
        .arg(&spool)
        .fails_with(75);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("pysk-logs: ") && err.contains("/.lock"),
        "{err}"
    );
    assert_eq!(
        files_below(&spool.join("inbox")).len(),
        3,
        "nothing was touched"
    );
    holder.kill().expect("kill");
    holder.wait().expect("wait");
}

#[test]
fn merge_output_into_a_closed_pipe_ends_quietly_and_archives_nothing() {
    let dir = scratch();
    let spool = sample_spool(dir.path());
    split_json(
        &tool("pysk-logs")
            .args(["split", "--json", "--spool"])
            .arg(&spool)
            .succeeds(),
    );
    let pending: Vec<PathBuf> = files_below(&spool.join("pending"))
        .iter()
        .map(|r| spool.join("pending").join(r))
        .collect();
    let script =
        r#""$0" merge --archive "$1" "${@:2}" | head -n1 >/dev/null; echo "${PIPESTATUS[0]}""#;
    // bash runs the tool with the environment the builder gives it.
    let logs = tool("pysk-logs").command();
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(script)
        .arg(logs.get_program())
        .arg(dir.path().join("archive"))
        .args(&pending);
    for (key, value) in logs.get_envs() {
        match value {
            Some(value) => bash.env(key, value),
            None => bash.env_remove(key),
        };
    }
    let out = bash.output().expect("bash");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("archive").exists(), "nothing archived");
    assert!(pending.iter().all(|p| p.exists()));
}

#[test]
fn merge_of_every_vhost_holds_every_line_once_in_time_order() {
    let dir = scratch();
    let spool = sample_spool(dir.path());
    split_json(
        &tool("pysk-logs")
            .args(["split", "--json", "--spool"])
            .arg(&spool)
            .succeeds(),
    );
    let pending = spool.join("pending");
    let out = tool("pysk-logs")
        .arg("merge")
        .args(files_below(&pending).iter().map(|rel| pending.join(rel)))
        .succeeds();
    assert!(out.stderr.is_empty());
    let mut merged: Vec<Vec<u8>> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let keys: Vec<String> = merged
        .iter()
        .map(|l| sortable(&String::from_utf8_lossy(l).split('[').nth(1).expect("stamp")[..20]))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "time order");
    merged.sort();
    assert_eq!(merged, lines_below(&pending));
}

/// Runs a split of a copy of `inbox` that is killed (by a failpoint or by
/// SIGKILL after `delay`), then a clean split, and returns the spool.
fn crashed_then_rerun(
    root: &Path,
    inbox: &Path,
    failpoint: Option<&str>,
    delay: Duration,
) -> PathBuf {
    let spool = root.join("spool");
    copy_dir(inbox, &spool.join("inbox"));
    let first = tool("pysk-logs")
        .args([
            "split",
            "-q",
            "--memory",
            "1M",
            "--inbox-settle",
            "0",
            "--spool",
        ])
        .arg(&spool);
    if let Some(point) = failpoint {
        let out = first.env("PYSK_LOGS_FAILPOINT", point).output();
        assert!(!out.status.success(), "failpoint {point} was not reached");
    } else {
        let mut child = first.spawn();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().expect("wait");
    }
    tool("pysk-logs")
        .args(["split", "-q", "--spool"])
        .arg(&spool)
        .succeeds();
    assert!(files_below(&spool.join("inbox")).is_empty());
    assert!(
        files_below(&spool.join("tmp")).is_empty(),
        "{:?}",
        files_below(&spool.join("tmp"))
    );
    spool
}

#[test]
fn a_run_killed_at_any_point_loses_and_duplicates_nothing() {
    let dir = scratch();
    // An inbox big enough that a run takes a while: the samples 20 times.
    let inbox = dir.path().join("inbox");
    fs::create_dir_all(&inbox).expect("mkdir");
    for n in 0..20 {
        for entry in fs::read_dir(examples().join("inbox")).expect("samples") {
            let entry = entry.expect("entry");
            fs::copy(
                entry.path(),
                inbox.join(format!("{n:02}-{}", entry.file_name().to_string_lossy())),
            )
            .expect("copy");
        }
    }
    let reference = dir.path().join("reference");
    copy_dir(&inbox, &reference.join("inbox"));
    split_json(
        &tool("pysk-logs")
            .args(["split", "--json", "--spool"])
            .arg(&reference)
            .succeeds(),
    );
    let expected_pending = lines_below(&reference.join("pending"));
    let expected_rejected = lines_below(&reference.join("rejected"));
    assert_eq!(expected_pending.len(), 30_000);

    let mut cases: Vec<(Option<&str>, Duration)> =
        ["before-commit", "after-commit", "mid-moves", "mid-removes"]
            .into_iter()
            .map(|p| (Some(p), Duration::ZERO))
            .collect();
    cases.extend([1u64, 5, 15, 30, 60, 120].map(|ms| (None, Duration::from_millis(ms))));
    for (i, (failpoint, delay)) in cases.into_iter().enumerate() {
        let root = dir.path().join(format!("case{i}"));
        let spool = crashed_then_rerun(&root, &inbox, failpoint, delay);
        let what = format!("{failpoint:?} after {delay:?}");
        assert_eq!(
            lines_below(&spool.join("pending")),
            expected_pending,
            "{what}"
        );
        // Rejected lines name their source file, which is the same path
        // relative to each spool: compare without the spool prefix.
        let strip = |lines: Vec<Vec<u8>>, spool: &Path| -> Vec<String> {
            let prefix = spool.display().to_string();
            let mut v: Vec<String> = lines
                .iter()
                .map(|l| String::from_utf8_lossy(l).replace(&prefix, "SPOOL"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            strip(lines_below(&spool.join("rejected")), &spool),
            strip(expected_rejected.clone(), &reference),
            "{what}"
        );
    }
}

#[test]
fn config_prints_the_switches_with_their_defaults() {
    let dir = scratch();
    write_switches(dir.path(), &[("logs_memory", "64M".into())]);
    let out = tool("pysk-logs")
        .config_dir(dir.path())
        .args(["--host", "web1.example.org", "config"])
        .succeeds();
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: BTreeMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    assert!(lines["logs_memory"].starts_with("\"64M\"  # "));
    assert!(lines["logs_spool"].starts_with("\"/var/spool/pysk/wwwlogs\"  # built-in default"));
    // Every switch `--help` documents, and no other, is in the output.
    let help = tool("pysk-logs").arg("--help").output();
    let documented: Vec<&str> = std::str::from_utf8(&help.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| l.strip_prefix("  logs_"))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(documented.len() > 10, "{documented:?}");
    assert_eq!(lines.len(), documented.len());
    for key in documented {
        assert!(lines.contains_key(format!("logs_{key}").as_str()), "{key}");
    }
}
