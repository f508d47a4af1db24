//! End-to-end tests of the inbox protocol of `pysk-logs split`: a file is
//! taken only when nobody writes it, a file written to while it is read is
//! left whole for the next run, odd inbox entries are reported and left,
//! and an unreadable input leaves no trace in the outputs. Writers are the
//! real `cp`, `sh` and `gzip`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pysk_tests::{require, scratch, stderr, tool};

/// Log line number `n` of virtual host `vhost`, in vhextended format.
fn line(vhost: &str, n: u64) -> String {
    format!(
        "{vhost} 192.0.2.{} - - [17/May/2015:12:{:02}:{:02} +0000] \"GET /n/{n} HTTP/1.1\" 200 {n} \"-\" \"inbox-test\"\n",
        n % 250 + 1,
        n / 60 % 60,
        n % 60
    )
}

/// `count` lines of `vhost` from number `first`.
fn lines(vhost: &str, first: u64, count: u64) -> String {
    (first..first + count).map(|n| line(vhost, n)).collect()
}

/// A split of the inbox of `spool` with `--inbox-settle settle`: its exit
/// code and JSON summary.
fn split(spool: &Path, settle: &str) -> (i32, serde_json::Value) {
    let out = tool("pysk-logs")
        .args(["split", "--json", "--inbox-settle", settle, "--spool"])
        .arg(spool)
        .output();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("split --json: {e}: {}", stderr(&out)));
    (out.status.code().expect("exit code"), json)
}

/// How many times each request number appears in the outputs below
/// `pending/`, and whether anything went to `rejected/`.
fn counts(spool: &Path) -> (BTreeMap<u64, u32>, usize) {
    let mut seen = BTreeMap::new();
    for vhost in fs::read_dir(spool.join("pending")).expect("pending") {
        for file in fs::read_dir(vhost.expect("vhost").path()).expect("vhost dir") {
            let text = fs::read_to_string(file.expect("file").path()).expect("output");
            for l in text.lines() {
                let n = l
                    .split("GET /n/")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("not a test line: {l}"));
                *seen.entry(n).or_insert(0) += 1;
            }
        }
    }
    let rejected = fs::read_dir(spool.join("rejected"))
        .map(|d| d.count())
        .unwrap_or(0);
    (seen, rejected)
}

/// Asserts that requests `0..total` each came out exactly once, nothing
/// was rejected and the inbox is empty.
fn exactly_once(spool: &Path, total: u64) {
    let (seen, rejected) = counts(spool);
    let missing: Vec<_> = (0..total).filter(|n| !seen.contains_key(n)).collect();
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c != 1).collect();
    assert_eq!(
        (missing.len(), twice.len()),
        (0, 0),
        "{missing:?} {twice:?}"
    );
    assert_eq!(seen.len() as u64, total);
    assert_eq!(rejected, 0);
    let left: Vec<_> = fs::read_dir(spool.join("inbox"))
        .expect("inbox")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A split with nothing more to wait for: exit 0, and the files it took.
fn split_ok(spool: &Path, settle: &str) -> u64 {
    let (code, json) = split(spool, settle);
    assert_eq!(code, 0, "{json}");
    json["files"].as_u64().expect("files")
}

#[test]
fn a_file_cp_is_still_writing_is_never_taken_and_every_line_arrives_once() {
    let Some(cp) = require("cp", "coreutils") else {
        return;
    };
    let Some(mkfifo) = require("mkfifo", "coreutils") else {
        return;
    };
    let dir = scratch();
    let spool = dir.path().join("spool");
    fs::create_dir_all(spool.join("inbox")).expect("inbox");
    // cp reads from a pipe fed in pieces, as it would from a slow disk or
    // network: the copy in the inbox grows between the splits.
    let fifo = dir.path().join("feed");
    assert!(
        Command::new(mkfifo)
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let copy = spool.join("inbox/big.log");
    let mut cp_child = Command::new(&cp).arg(&fifo).arg(&copy).spawn().expect("cp");
    let data = lines("www.example.org", 0, 100_000);
    let mut feed = fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("fifo");
    let piece = data.len() / 10 + 1;
    for chunk in data.as_bytes().chunks(piece) {
        // Pieces end anywhere, also inside a line.
        feed.write_all(chunk).expect("feed cp");
        feed.flush().expect("flush");
        while fs::metadata(&copy).map(|m| m.len()).unwrap_or(0) == 0 {
            std::thread::yield_now();
        }
        let (code, json) = split(&spool, "0");
        assert_eq!(code, 0, "{json}");
        assert_eq!(json["files"], 0, "{json}");
        assert_eq!(
            json["waiting"],
            serde_json::json!([{"path": copy.display().to_string(), "why": "open for writing"}])
        );
    }
    drop(feed);
    assert!(cp_child.wait().expect("cp").success());
    assert_eq!(split_ok(&spool, "0"), 1);
    exactly_once(&spool, 100_000);

    // A plain cp of a large file, racing a loop of splits with the default
    // quiet period.
    let source = dir.path().join("source.log");
    fs::write(&source, lines("www.example.org", 100_000, 300_000)).expect("source");
    let mut cp_child = Command::new(&cp)
        .arg(&source)
        .arg(spool.join("inbox/big2.log"))
        .spawn()
        .expect("cp");
    while cp_child.try_wait().expect("cp").is_none() {
        split_ok(&spool, "3");
    }
    assert!(cp_child.wait().expect("cp").success());
    while fs::read_dir(spool.join("inbox")).expect("inbox").count() > 0 {
        split_ok(&spool, "3");
    }
    exactly_once(&spool, 400_000);
}

#[test]
fn a_file_appended_to_while_split_runs_loses_and_duplicates_no_line() {
    let Some(sh) = require("sh", "dash") else {
        return;
    };
    let dir = scratch();
    let spool = dir.path().join("spool");
    fs::create_dir_all(spool.join("inbox")).expect("inbox");
    fs::create_dir_all(dir.path().join("src")).expect("src");
    // The writer opens the file, appends a line and closes it, 30,000
    // times, as a shell loop logging into the inbox does; split runs with
    // no quiet period, so files are taken between two appends and the
    // check after reading is what keeps every line.
    fs::write(
        dir.path().join("src/lines"),
        lines("www.example.org", 0, 30_000),
    )
    .expect("lines");
    let mut writer = Command::new(sh)
        .arg("-c")
        .arg("while IFS= read -r l; do printf '%s\\n' \"$l\" >> \"$1\"; done < \"$2\"")
        .arg("writer")
        .arg(spool.join("inbox/app.log"))
        .arg(dir.path().join("src/lines"))
        .stdin(Stdio::null())
        .spawn()
        .expect("writer");
    let mut runs = 0;
    while writer.try_wait().expect("writer").is_none() {
        split_ok(&spool, "0");
        runs += 1;
    }
    assert!(writer.wait().expect("writer").success());
    while fs::read_dir(spool.join("inbox")).expect("inbox").count() > 0 {
        split_ok(&spool, "0");
    }
    assert!(runs > 0);
    exactly_once(&spool, 30_000);
}

#[test]
fn odd_inbox_entries_are_reported_left_in_place_and_exit_1() {
    let Some(mkfifo) = require("mkfifo", "coreutils") else {
        return;
    };
    let dir = scratch();
    let spool = dir.path().join("spool");
    let inbox = spool.join("inbox");
    fs::create_dir_all(inbox.join("a-directory")).expect("dir");
    assert!(
        Command::new(mkfifo)
            .arg(inbox.join("a-fifo"))
            .status()
            .expect("mkfifo")
            .success()
    );
    let _socket = std::os::unix::net::UnixListener::bind(inbox.join("a-socket")).expect("socket");
    std::os::unix::fs::symlink("gone.log", inbox.join("dangling")).expect("link");
    let target = dir.path().join("elsewhere.log");
    fs::write(&target, line("www.example.org", 1)).expect("target");
    std::os::unix::fs::symlink(&target, inbox.join("link.log")).expect("link");
    fs::write(inbox.join(".in-delivery"), line("www.example.org", 2)).expect("dot");
    fs::write(inbox.join("good.log"), line("www.example.org", 0)).expect("good");

    let out = tool("pysk-logs")
        .args(["split", "--spool"])
        .arg(&spool)
        .fails_with(1);
    let p = |name: &str| inbox.join(name).display().to_string();
    let link = "a symbolic link (move or copy the file itself into the inbox)";
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-logs: {}: a directory; left in the inbox\n\
             pysk-logs: {}: a FIFO; left in the inbox\n\
             pysk-logs: {}: a socket; left in the inbox\n\
             pysk-logs: {}: {link}; left in the inbox\n\
             pysk-logs: {}: {link}; left in the inbox\n\
             pysk-logs: split 1 file(s), 1 line(s): 1 accepted, 0 rejected\n\
             pysk-logs: www.example.org: 1 line(s)\n",
            p("a-directory"),
            p("a-fifo"),
            p("a-socket"),
            p("dangling"),
            p("link.log"),
        )
    );
    let mut left: Vec<String> = fs::read_dir(&inbox)
        .expect("inbox")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ".in-delivery",
            "a-directory",
            "a-fifo",
            "a-socket",
            "dangling",
            "link.log"
        ]
    );
    assert_eq!(
        fs::read_to_string(&target).expect("target"),
        line("www.example.org", 1)
    );
    let (seen, rejected) = counts(&spool);
    assert_eq!(
        (seen.keys().copied().collect::<Vec<_>>(), rejected),
        (vec![0], 0)
    );

    // With --json the same, as a list.
    let (code, json) = split(&spool, "0");
    assert_eq!(code, 1);
    assert_eq!(json["files"], 0);
    let odd: Vec<_> = json["odd"]
        .as_array()
        .expect("odd")
        .iter()
        .map(|o| o["why"].as_str().expect("why"))
        .collect();
    assert_eq!(odd, ["a directory", "a FIFO", "a socket", link, link]);
}

/// `count` lines of `vhost`, gzip-compressed by the real gzip, with the
/// last `cut` bytes cut off.
fn truncated_gzip(dir: &Path, gzip: &Path, vhost: &str, count: u64, cut: u64) -> PathBuf {
    let plain = dir.join(format!("{vhost}.log"));
    fs::write(&plain, lines(vhost, 0, count)).expect("plain");
    assert!(
        Command::new(gzip)
            .args(["-n", "-k"])
            .arg(&plain)
            .status()
            .expect("gzip")
            .success()
    );
    let gz = dir.join(format!("{vhost}.log.gz"));
    let len = fs::metadata(&gz).expect("gz").len();
    let file = fs::OpenOptions::new().write(true).open(&gz).expect("gz");
    file.set_len(len - cut).expect("truncate");
    gz
}

#[test]
fn an_unreadable_input_leaves_no_empty_output_and_no_zero_line_entry() {
    let Some(gzip) = require("gzip", "gzip") else {
        return;
    };
    let dir = scratch();
    let spool = dir.path().join("spool");
    let inbox = spool.join("inbox");
    fs::create_dir_all(&inbox).expect("inbox");
    // Cut deep enough that many lines of it were read before the error.
    let gz = truncated_gzip(dir.path(), &gzip, "lost.example.org", 50_000, 20_000);
    fs::rename(&gz, inbox.join("b.log.gz")).expect("move");
    fs::write(inbox.join("a.log"), lines("www.example.org", 0, 3)).expect("good");

    let (code, json) = split(&spool, "0");
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["vhosts"], serde_json::json!({"www.example.org": 3}));
    assert_eq!(json["accepted"], 3);
    assert_eq!(
        json["unreadable"],
        serde_json::json!([inbox.join("b.log.gz").display().to_string()])
    );
    let mut pending: Vec<_> = fs::read_dir(spool.join("pending"))
        .expect("pending")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    pending.sort();
    assert_eq!(pending, ["www.example.org"]);
    let rejected: Vec<_> = fs::read_dir(spool.join("rejected"))
        .expect("rejected")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].ends_with("-b.log.gz"), "{rejected:?}");
    assert_eq!(fs::read_dir(&inbox).expect("inbox").count(), 0);
    let summary = tool("pysk-logs")
        .args(["split", "--inbox-settle", "0", "--spool"])
        .arg(&spool)
        .succeeds();
    assert_eq!(stderr(&summary), "");
}

#[test]
fn a_name_too_long_for_the_taken_suffix_is_taken_and_blocks_no_other_file() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch();
    let spool = dir.path().join("spool");
    let inbox = spool.join("inbox");
    fs::create_dir_all(&inbox).expect("inbox");
    fs::write(inbox.join("a".repeat(250)), line("www.example.org", 0)).expect("long");
    // Each byte that is not UTF-8 is three bytes once made UTF-8.
    let mut odd = vec![0xfe; 90];
    odd.extend_from_slice(b".log");
    let odd = std::ffi::OsStr::from_bytes(&odd);
    fs::write(inbox.join(odd), line("www.example.org", 1)).expect("odd");
    fs::write(inbox.join("good.log"), line("www.example.org", 2)).expect("good");

    let out = tool("pysk-logs")
        .args(["split", "-q", "--inbox-settle", "0", "--spool"])
        .arg(&spool)
        .succeeds();
    assert_eq!(stderr(&out), "");
    exactly_once(&spool, 3);
    assert_eq!(split_ok(&spool, "0"), 0);
    exactly_once(&spool, 3);
}

#[test]
fn a_file_renamed_while_split_waits_for_it_fails_nothing() {
    let dir = scratch();
    let spool = dir.path().join("spool");
    let inbox = spool.join("inbox");
    fs::create_dir_all(&inbox).expect("inbox");
    let old = fs::File::create(inbox.join("old.log")).expect("old");
    (&old)
        .write_all(line("www.example.org", 0).as_bytes())
        .expect("old");
    old.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .expect("old times");
    drop(old);
    // An uploader's temporary name (no dot), just written: split waits.
    fs::write(inbox.join("upload.filepart"), line("www.example.org", 1)).expect("upload");

    let child = tool("pysk-logs")
        .args(["split", "--json", "--inbox-settle", "5", "--spool"])
        .arg(&spool)
        .spawn();
    let wchan = PathBuf::from(format!("/proc/{}/wchan", child.id()));
    // Renamed once split sleeps out the quiet period (that sleep is the
    // only one before it takes the files).
    while !fs::read_to_string(&wchan)
        .expect("the split's wait channel")
        .contains("nanosleep")
    {
        std::thread::yield_now();
    }
    fs::rename(inbox.join("upload.filepart"), inbox.join("upload.log")).expect("rename");
    let out = child.wait_with_output().expect("split");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (&json["files"], &json["accepted"], &json["waiting"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!([])
        )
    );
    let left: Vec<_> = fs::read_dir(&inbox)
        .expect("inbox")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["upload.log"]);
    assert_eq!(split_ok(&spool, "0"), 1);
    exactly_once(&spool, 2);
}

#[test]
fn a_name_not_utf8_that_looks_taken_is_committed_once() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch();
    let spool = dir.path().join("spool");
    let inbox = spool.join("inbox");
    fs::create_dir_all(&inbox).expect("inbox");
    let name = std::ffi::OsStr::from_bytes(b"\xfe.log.taken-0");
    fs::write(inbox.join(name), lines("www.example.org", 0, 2)).expect("odd");

    let out = tool("pysk-logs")
        .args(["split", "-q", "--inbox-settle", "0", "--spool"])
        .arg(&spool)
        .succeeds();
    assert_eq!(stderr(&out), "");
    exactly_once(&spool, 2);
    assert_eq!(split_ok(&spool, "0"), 0);
    exactly_once(&spool, 2);
}

#[test]
fn a_file_held_open_and_unwritten_for_hours_is_a_warning() {
    let Some(sleep) = require("sleep", "coreutils") else {
        return;
    };
    let dir = scratch();
    let spool = dir.path().join("spool");
    let inbox = spool.join("inbox");
    fs::create_dir_all(&inbox).expect("inbox");
    let path = inbox.join("daemon.log");
    let log = fs::File::create(&path).expect("log");
    (&log)
        .write_all(line("www.example.org", 0).as_bytes())
        .expect("log");
    log.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .expect("times");
    // A program that keeps the log open for writing, as a daemon does.
    let mut daemon = Command::new(sleep)
        .arg("600")
        .stdout(Stdio::from(log))
        .spawn()
        .expect("sleep");

    let out = tool("pysk-logs")
        .args(["split", "-q", "--inbox-settle", "0", "--spool"])
        .arg(&spool)
        .succeeds();
    daemon.kill().expect("kill sleep");
    daemon.wait().expect("sleep ended");
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-logs: {}: open for writing but unchanged for over an hour \
             (a program writing its log into the inbox?); left for the next run\n",
            path.display()
        )
    );
    assert!(path.exists());
}
