//! End-to-end tests of what `pysk-logs` reads: files compressed by the
//! real `gzip`, `bzip2`, `xz` and `zstd` programs (several streams in one
//! file, gzip's zero padding, streams cut short), through `split`, `merge`
//! and `resolve`; and merge's final count of late and timestamp-less lines.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pysk_tests::dns::{DnsServer, Reply};
use pysk_tests::{files_below, require, scratch, stderr, tool};

/// The compressing programs, their Debian packages, and the name a
/// rotated log compressed by each gets.
const PROGRAMS: [(&str, &str, &str); 4] = [
    ("gzip", "gzip", "gz"),
    ("bzip2", "bzip2", "bz2"),
    ("xz", "xz-utils", "xz"),
    ("zstd", "zstd", "zst"),
];

/// Every compressing program, or `None` (the test skipped) outside CI when
/// one is missing.
fn programs() -> Option<()> {
    for (program, package, _) in PROGRAMS {
        require(program, package)?;
    }
    Some(())
}

/// `text` compressed by the real `program` (stdin to stdout).
fn compress(program: &str, text: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(["-c", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = text.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("feed");
    assert!(out.status.success(), "{program} failed");
    out.stdout
}

/// Whether the real `program` finds `file` intact (`-t`).
fn program_accepts(program: &str, file: &Path) -> bool {
    Command::new(program)
        .arg("-t")
        .arg(file)
        .stderr(Stdio::null())
        .status()
        .expect("run the program")
        .success()
}

/// The timestamp `second` seconds after 10:00:00 on 17 May 2015, UTC.
fn stamp(second: u32) -> String {
    format!(
        "17/May/2015:{:02}:{:02}:{:02} +0000",
        10 + second / 3600,
        second / 60 % 60,
        second % 60
    )
}

/// A combined-format line at `second`, from client 192.0.2.`client`.
fn combined(second: u32, client: u8) -> String {
    format!(
        "192.0.2.{client} - - [{}] \"GET /page/{second} HTTP/1.1\" 200 {second} \"-\" \"agent\"\n",
        stamp(second)
    )
}

/// Lines at `seconds` for `vhost` in `vhextended` format, and what split
/// makes of each (the combined line: the times are UTC already).
fn vhost_lines(vhost: &str, seconds: impl Iterator<Item = u32>) -> (String, Vec<String>) {
    let mut raw = String::new();
    let mut out = Vec::new();
    for s in seconds {
        let line = combined(s, (s % 200) as u8 + 1);
        raw.push_str(&format!("{vhost} {line}"));
        out.push(line);
    }
    (raw, out)
}

/// The content of each vhost's outputs in `pending/`, concatenated.
fn pending(spool: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for rel in files_below(&spool.join("pending")) {
        let vhost = rel.split('/').next().expect("vhost").to_owned();
        let text = fs::read_to_string(spool.join("pending").join(&rel)).expect("output");
        out.entry(vhost).or_insert_with(String::new).push_str(&text);
    }
    out
}

fn split(spool: &Path) -> Output {
    tool("pysk-logs")
        .args(["split", "--json", "--spool"])
        .arg(spool)
        .output()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("a JSON summary")
}

#[test]
fn split_reads_every_compression_by_content_with_every_stream_and_padding() {
    let Some(()) = programs() else { return };
    let dir = scratch();
    let spool = dir.path().join("spool");
    let inbox = spool.join("inbox");
    fs::create_dir_all(&inbox).expect("inbox");
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Two vhosts, each file two streams (as `gzip -c >>` or pbzip2
    // write), the times of all files interleaved.
    for (i, (program, _, ext)) in PROGRAMS.iter().enumerate() {
        let mut bytes = Vec::new();
        for (half, vhost) in ["www.example.org", "shop.example.net"].iter().enumerate() {
            let first = (i * 2 + half) as u32;
            let (raw, out) = vhost_lines(vhost, (first..3000).step_by(8));
            bytes.extend(compress(program, raw.as_bytes()));
            expected.entry(vhost.to_string()).or_default().extend(out);
        }
        // The name does not say how it is compressed: the content does.
        fs::write(inbox.join(format!("access.log.{}", i + 1)), &bytes).expect("write");
        let named = inbox.join(format!("named.log.{ext}"));
        let (raw, out) = vhost_lines("blog.example.com", (i as u32..3000).step_by(4));
        fs::write(&named, compress(program, raw.as_bytes())).expect("write");
        expected
            .entry("blog.example.com".into())
            .or_default()
            .extend(out);
    }
    // gzip with zero padding after the last member, as a tape or a block
    // device leaves it; `gzip -t` takes it.
    let padded = inbox.join("padded.gz");
    let (raw, out) = vhost_lines("www.example.org", (3000..3100).step_by(1));
    let mut bytes = compress("gzip", raw.as_bytes());
    bytes.extend(vec![0u8; 10240]);
    fs::write(&padded, &bytes).expect("write");
    assert!(program_accepts("gzip", &padded));
    expected
        .entry("www.example.org".into())
        .or_default()
        .extend(out);

    let out = split(&spool);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let total: usize = expected.values().map(Vec::len).sum();
    let summary = json(&out);
    assert_eq!(summary["files"], 9);
    assert_eq!(summary["lines"], total);
    assert_eq!(summary["accepted"], total);
    assert_eq!(summary["rejected"], serde_json::json!({}));
    assert_eq!(summary["unreadable"], serde_json::json!([]));
    let wanted: BTreeMap<String, String> = expected
        .into_iter()
        .map(|(vhost, mut lines)| {
            lines.sort_by_key(|l| l[l.find('[').expect("[")..].to_owned());
            (vhost, lines.concat())
        })
        .collect();
    assert_eq!(pending(&spool), wanted);
    assert_eq!(fs::read_dir(&inbox).expect("inbox").count(), 0);
}

#[test]
fn split_sets_a_cut_or_corrupt_stream_of_any_kind_aside_whole_and_exits_1() {
    let Some(()) = programs() else { return };
    let dir = scratch();
    let spool = dir.path().join("spool");
    let inbox = spool.join("inbox");
    fs::create_dir_all(&inbox).expect("inbox");
    let (raw, _) = vhost_lines("www.example.org", 0..3000);
    let mut cut = BTreeMap::new();
    for (program, _, ext) in PROGRAMS {
        let full = compress(program, raw.as_bytes());
        cut.insert(format!("half.{ext}"), full[..full.len() / 2].to_vec());
    }
    // Cut in gzip's trailer: every line is there, the check of them is not.
    let full = compress("gzip", raw.as_bytes());
    cut.insert("trailer.gz".into(), full[..full.len() - 4].to_vec());
    // Padding that is not zeros.
    let mut garbage = full.clone();
    garbage.extend(b"\0\0\0garbage");
    cut.insert("garbage.gz".into(), garbage);
    for (name, bytes) in &cut {
        fs::write(inbox.join(name), bytes).expect("write");
    }
    let (good, good_out) = vhost_lines("shop.example.net", 0..10);
    fs::write(inbox.join("good.log"), good).expect("write");

    let out = split(&spool);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["lines"], 10);
    assert_eq!(summary["accepted"], 10);
    assert_eq!(
        summary["unreadable"].as_array().expect("list").len(),
        cut.len()
    );
    let why = |name: &str| match name {
        "half.bz2" => "bzip2 data: cut short",
        "half.xz" => "xz data: cut short",
        "half.zst" => "zstd data: cut short",
        "garbage.gz" => {
            "gzip data: bytes after the last member that are neither a member nor zero padding"
        }
        _ => "gzip data: cut short",
    };
    let mut messages: Vec<String> = cut
        .keys()
        .map(|name| {
            format!(
                "pysk-logs: {}: cannot read: {}",
                inbox.join(name).display(),
                why(name)
            )
        })
        .collect();
    messages.sort();
    let mut said: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.contains("cannot read"))
        .map(str::to_owned)
        .collect();
    said.sort();
    assert_eq!(said, messages);
    // Each is kept whole in rejected/, none of its lines used.
    let rejected = files_below(&spool.join("rejected"));
    assert_eq!(rejected.len(), cut.len(), "{rejected:?}");
    for (name, bytes) in &cut {
        let kept = rejected
            .iter()
            .find(|r| r.ends_with(&format!("-{name}")))
            .unwrap_or_else(|| panic!("{name} in rejected/: {rejected:?}"));
        assert_eq!(
            &fs::read(spool.join("rejected").join(kept)).expect("read"),
            bytes
        );
        let told = format!(
            "pysk-logs: {}: set aside whole as {}",
            inbox.join(name).display(),
            spool.join("rejected").join(kept).display()
        );
        assert!(
            stderr(&out).lines().any(|l| l == told),
            "{told} in {}",
            stderr(&out)
        );
    }
    // No line of a cut input is used (whether an empty output is left for
    // its vhost is the inbox's business, not the reader's).
    let mut outputs = pending(&spool);
    outputs.retain(|_, text| !text.is_empty());
    assert_eq!(
        outputs,
        BTreeMap::from([("shop.example.net".to_owned(), good_out.concat())])
    );
    assert_eq!(fs::read_dir(&inbox).expect("inbox").count(), 0);
}

/// Time-sorted combined logs, one per program and a plain one, their
/// seconds interleaved; returns the paths and the merged text expected.
fn sorted_inputs(dir: &Path) -> (Vec<PathBuf>, String) {
    let mut paths = Vec::new();
    let mut all = Vec::new();
    for (i, (program, _, ext)) in PROGRAMS.iter().enumerate() {
        let lines: Vec<(u32, String)> = (i as u32..2000)
            .step_by(5)
            .map(|s| (s, combined(s, 1)))
            .collect();
        let text: String = lines.iter().map(|(_, l)| l.as_str()).collect();
        let path = dir.join(format!("{i}.log.{ext}"));
        fs::write(&path, compress(program, text.as_bytes())).expect("write");
        paths.push(path);
        all.extend(lines);
    }
    let plain: Vec<(u32, String)> = (4..2000).step_by(5).map(|s| (s, combined(s, 2))).collect();
    let path = dir.join("plain.log");
    fs::write(
        &path,
        plain.iter().map(|(_, l)| l.as_str()).collect::<String>(),
    )
    .expect("write");
    paths.push(path);
    all.extend(plain);
    all.sort_by_key(|(s, _)| *s);
    (paths, all.into_iter().map(|(_, l)| l).collect())
}

#[test]
fn merge_reads_every_compression_and_a_cut_input_ends_it_with_nothing_archived() {
    let Some(()) = programs() else { return };
    let dir = scratch();
    let (paths, merged) = sorted_inputs(dir.path());
    let out = tool("pysk-logs").arg("merge").args(&paths).output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), merged);
    assert_eq!(stderr(&out), "");

    // One input cut short: an error naming it, exit 74, nothing archived.
    let vhost_dir = dir.path().join("www.example.org");
    fs::create_dir(&vhost_dir).expect("mkdir");
    let (text, _) = vhost_lines("x", 0..300);
    for (program, _, ext) in PROGRAMS {
        let full = compress(program, text.as_bytes());
        let cut = vhost_dir.join(format!("cut.log.{ext}"));
        fs::write(&cut, &full[..full.len() / 2]).expect("write");
        let archive = dir.path().join("processed");
        let out = tool("pysk-logs")
            .arg("merge")
            .arg("--archive")
            .arg(&archive)
            .args(&paths)
            .arg(&cut)
            .output();
        assert_eq!(out.status.code(), Some(74), "{}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "pysk-logs: {}: cannot read: {program} data: cut short\n",
                cut.display()
            )
        );
        assert_eq!(out.stdout, b"");
        assert!(!archive.exists());
        assert!(paths.iter().all(|p| p.exists()) && cut.exists());
    }
}

#[test]
fn merge_archives_every_compression_as_gzip() {
    let Some(()) = programs() else { return };
    let dir = scratch();
    let vhost_dir = dir.path().join("www.example.org");
    fs::create_dir(&vhost_dir).expect("mkdir");
    let (paths, merged) = sorted_inputs(&vhost_dir);
    let archive = dir.path().join("processed");
    let out = tool("pysk-logs")
        .arg("merge")
        .arg("--archive")
        .arg(&archive)
        .args(&paths)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), merged);
    let archived = files_below(&archive.join("www.example.org"));
    assert_eq!(
        archived,
        [
            "0.log.gz",
            "1.log.gz",
            "2.log.gz",
            "3.log.gz",
            "plain.log.gz"
        ]
    );
    // Each archived file is gzip, with the very lines of its input.
    let again = tool("pysk-logs")
        .arg("merge")
        .args(
            archived
                .iter()
                .map(|a| archive.join("www.example.org").join(a)),
        )
        .output();
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), merged);
    for a in &archived {
        assert!(program_accepts(
            "gzip",
            &archive.join("www.example.org").join(a)
        ));
    }
}

#[test]
fn merge_always_ends_with_the_count_of_late_and_unreadable_lines() {
    let dir = scratch();
    // 12 lines without a time, then 14 lines each earlier than the one
    // before: 13 of them late.
    let mut text = "no time here\n".repeat(12);
    for s in (0..14).rev() {
        text.push_str(&combined(100 + s, 1));
    }
    let path = dir.path().join("disorder.log");
    fs::write(&path, &text).expect("write");
    for quiet in [false, true] {
        let out = tool("pysk-logs")
            .arg("merge")
            .args(quiet.then_some("-q"))
            .args(["--reorder", "1"])
            .arg(&path)
            .output();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), text);
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 21, "{err}");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("written out of order"))
                .count(),
            10
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("no readable timestamp;"))
                .count(),
            10
        );
        assert_eq!(
            lines[20],
            "pysk-logs: 13 line(s) written late (out of order; raise --reorder), 12 line(s) \
             without a readable timestamp"
        );
    }
    // Below the per-line limit the count still comes.
    let few = dir.path().join("few.log");
    fs::write(&few, combined(5, 1) + &combined(4, 1)).expect("write");
    let out = tool("pysk-logs")
        .args(["merge", "--reorder", "1"])
        .arg(&few)
        .output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-logs: {}:2: 1 s earlier than lines already written; written out of order \
             (raise --reorder)\n\
             pysk-logs: 1 line(s) written late (out of order; raise --reorder), 0 line(s) \
             without a readable timestamp\n",
            few.display()
        )
    );
    // In order: not a word.
    let fine = dir.path().join("fine.log");
    fs::write(&fine, combined(4, 1) + &combined(5, 1)).expect("write");
    let out = tool("pysk-logs").arg("merge").arg(&fine).output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
}

#[test]
fn merge_counts_a_line_without_a_time_after_a_late_one_only_as_timeless() {
    let dir = scratch();
    // 14 lines each earlier than the one before (13 late), each followed by
    // a line without a time: that one takes the late line's time but is
    // not late itself.
    let mut text = String::new();
    for s in (0..14).rev() {
        text.push_str(&combined(100 + s, 1));
        text.push_str("no time here\n");
    }
    let path = dir.path().join("mixed.log");
    fs::write(&path, &text).expect("write");
    let out = tool("pysk-logs")
        .args(["merge", "--reorder", "1"])
        .arg(&path)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 21, "{err}");
    let late: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains("written out of order"))
        .copied()
        .collect();
    assert_eq!(late.len(), 10, "{err}");
    // The late ones are the lines with a time: 3, 5, 7, ...
    let first = format!("pysk-logs: {}:3: 1 s earlier", path.display());
    assert!(late[0].starts_with(&first), "{err}");
    assert_eq!(
        lines[20],
        "pysk-logs: 13 line(s) written late (out of order; raise --reorder), 14 line(s) \
         without a readable timestamp"
    );
}

/// A DNS server naming 192.0.2.N `host-N.example.org`.
fn dns() -> DnsServer {
    let rule = |addr: IpAddr| match addr {
        IpAddr::V4(v4) => Reply::Name(
            format!("host-{}.example.org", v4.octets()[3]),
            Duration::ZERO,
        ),
        IpAddr::V6(_) => Reply::NxDomain(Duration::ZERO),
    };
    DnsServer::start(
        "127.0.0.1:0".parse().expect("addr"),
        Box::new(rule),
        HashMap::new(),
        Duration::from_millis(100),
    )
    .expect("start the test DNS server")
}

fn resolve(dns: &DnsServer, cache: &Path, inputs: &[PathBuf]) -> Output {
    tool("pysk-logs")
        .args(["resolve", "--json", "--timeout", "2", "--attempts", "1"])
        .arg("--nameserver")
        .arg(dns.addr().to_string())
        .arg("--cache")
        .arg(cache)
        .args(inputs)
        .output()
}

#[test]
fn resolve_reads_every_compression_and_a_cut_input_changes_nothing() {
    let Some(()) = programs() else { return };
    let dir = scratch();
    let server = dns();
    // Client 192.0.2.(i+1) in the file of program i, one more in a gzip
    // file with zero padding.
    let mut inputs = Vec::new();
    for (i, (program, _, ext)) in PROGRAMS.iter().enumerate() {
        let text: String = (0..50).map(|s| combined(s, i as u8 + 1)).collect();
        let path = dir.path().join(format!("access.log.{ext}"));
        fs::write(&path, compress(program, text.as_bytes())).expect("write");
        inputs.push(path);
    }
    let mut padded = compress("gzip", combined(0, 9).as_bytes());
    padded.extend([0u8; 512]);
    let path = dir.path().join("padded");
    fs::write(&path, padded).expect("write");
    inputs.push(path);

    let cache = dir.path().join("dnscache.txt");
    let out = resolve(&server, &cache, &inputs);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["addresses"], 5);
    assert_eq!(summary["not_addresses"], 0);
    assert_eq!(summary["resolved"], 5);
    let names: Vec<String> = fs::read_to_string(&cache)
        .expect("cache")
        .lines()
        .map(|l| l.split_once(' ').expect("epoch").1.to_owned())
        .collect();
    assert_eq!(
        names,
        [1, 2, 3, 4, 9].map(|n| format!("192.0.2.{n} host-{n}.example.org"))
    );

    // On stdin too, by content.
    let text: String = (0..50).map(|s| combined(s, 10)).collect();
    let out = tool("pysk-logs")
        .args(["resolve", "--json", "--timeout", "2", "--attempts", "1"])
        .arg("--nameserver")
        .arg(server.addr().to_string())
        .arg("--cache")
        .arg(&cache)
        .stdin(compress("zstd", text.as_bytes()))
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["addresses"], 1);
    assert_eq!(json(&out)["resolved"], 1);

    // A cut input: an error naming it, exit 74, the cache as it was.
    let before = fs::read(&cache).expect("cache");
    for (program, _, ext) in PROGRAMS {
        let text: String = (0..2000).map(|s| combined(s, 77)).collect();
        let full = compress(program, text.as_bytes());
        let cut = dir.path().join(format!("cut.{ext}"));
        fs::write(&cut, &full[..full.len() / 2]).expect("write");
        let out = resolve(&server, &cache, std::slice::from_ref(&cut));
        assert_eq!(out.status.code(), Some(74), "{}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "pysk-logs: {}: cannot read: {program} data: cut short\n",
                cut.display()
            )
        );
        assert_eq!(fs::read(&cache).expect("cache"), before);
    }
}
