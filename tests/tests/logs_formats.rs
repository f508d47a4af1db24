//! End-to-end tests of the formats other servers write (`examples/formats/`):
//! Debian's `other_vhosts_access.log` (`vhost_combined`), an nginx `main`
//! log and a Caddy JSON log go through `split` and `merge`; the outputs are
//! compared byte for byte with the combined lines `examples/make-samples`
//! computed from the corpus, every input line is accounted for once, and
//! AWStats reads the merged result.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use pysk_tests::{AwstatsDb, awstats_update, bin, examples, require, scratch, stderr, tool};

/// A sample of `examples/formats/`, and the `--vhost` its split needs.
struct Sample {
    name: &'static str,
    vhost: Option<&'static str>,
}

const VHOST_COMBINED: Sample = Sample {
    name: "other_vhosts_access.log",
    vhost: Some("www.example.org"),
};
const NGINX_MAIN: Sample = Sample {
    name: "access.log",
    vhost: Some("shop.example.net"),
};
const CADDY: Sample = Sample {
    name: "caddy.log",
    vhost: None,
};

fn formats() -> PathBuf {
    examples().join("formats")
}

/// Each virtual host's expected bytes.
type Outputs = BTreeMap<String, Vec<u8>>;

/// The expected output of `sample`: each virtual host's bytes, and the
/// rejected lines as (line number, reason).
fn expected(sample: &Sample) -> (Outputs, Vec<(u64, String)>) {
    let dir = formats().join("expected").join(sample.name);
    let mut outputs = BTreeMap::new();
    for entry in fs::read_dir(&dir).expect("expected dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if let Some(vhost) = name.strip_suffix(".log") {
            outputs.insert(vhost.to_owned(), fs::read(&path).expect("expected output"));
        }
    }
    let rejected = fs::read_to_string(dir.join("rejected"))
        .expect("expected rejects")
        .lines()
        .map(|l| {
            let (n, reason) = l.split_once(' ').expect("`N reason`");
            (n.parse().expect("line number"), reason.to_owned())
        })
        .collect();
    (outputs, rejected)
}

/// The files directly below `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Splits `sample` through a spool's inbox; returns the spool and the JSON
/// summary. Nothing may be said on stderr.
fn split(root: &Path, sample: &Sample) -> (PathBuf, serde_json::Value) {
    let (spool, summary, stderr) = split_saying(root, sample);
    assert_eq!(stderr, "");
    (spool, summary)
}

/// Splits `sample` through a spool's inbox; returns the spool, the JSON
/// summary and what was said on stderr.
fn split_saying(root: &Path, sample: &Sample) -> (PathBuf, serde_json::Value, String) {
    let spool = root.join("spool");
    fs::create_dir_all(spool.join("inbox")).expect("inbox");
    fs::copy(
        formats().join(sample.name),
        spool.join("inbox").join(sample.name),
    )
    .expect("copy sample");
    let mut cmd = tool("pysk-logs")
        .args(["split", "--json", "--spool"])
        .arg(&spool);
    if let Some(vhost) = sample.vhost {
        cmd = cmd.args(["--vhost", vhost]);
    }
    let out = cmd.succeeds();
    let summary = serde_json::from_slice(&out.stdout).expect("split --json prints JSON");
    (spool, summary, stderr(&out))
}

/// Splits `sample` and checks every output byte and every rejected line
/// against what `make-samples` computed.
fn split_is_exact(sample: &Sample) {
    let dir = scratch();
    let (spool, summary) = split(dir.path(), sample);
    let (outputs, rejected) = expected(sample);
    let input = fs::read(formats().join(sample.name)).expect("sample");
    let lines = input.iter().filter(|&&b| b == b'\n').count() as u64;
    let accepted: u64 = outputs
        .values()
        .map(|o| o.iter().filter(|&&b| b == b'\n').count() as u64)
        .sum();
    assert_eq!(summary["lines"], lines, "{}", sample.name);
    assert_eq!(summary["accepted"], accepted, "{}", sample.name);
    assert_eq!(accepted + rejected.len() as u64, lines, "every line once");
    let mut reasons = BTreeMap::<String, u64>::new();
    for (_, reason) in &rejected {
        *reasons.entry(reason.clone()).or_default() += 1;
    }
    assert_eq!(
        summary["rejected"],
        serde_json::json!(reasons),
        "{}",
        sample.name
    );

    // Each virtual host: one output, byte for byte the reference.
    let pending = spool.join("pending");
    let vhosts: Vec<String> = files(&pending)
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(vhosts, outputs.keys().cloned().collect::<Vec<_>>());
    for (vhost, want) in &outputs {
        let got = files(&pending.join(vhost));
        assert_eq!(got.len(), 1, "{vhost}: {got:?}");
        let bytes = fs::read(&got[0]).expect("output");
        assert!(bytes == *want, "{} {vhost}: output differs", sample.name);
        // merge of the one output writes it unchanged.
        let out = tool("pysk-logs").arg("merge").arg(&got[0]).succeeds();
        assert!(
            out.stdout == *want,
            "{} {vhost}: merge differs",
            sample.name
        );
        assert!(out.stderr.is_empty());
    }

    // Each rejected line: its reason, the file and line it came from, the
    // line itself.
    let text: Vec<String> = files(&spool.join("rejected"))
        .iter()
        .flat_map(|p| {
            String::from_utf8_lossy(&fs::read(p).expect("rejected"))
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let raw: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let mut got: Vec<(u64, String)> = text
        .iter()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let reason = f.next().expect("reason").to_owned();
            let source = f.next().expect("source");
            let n: u64 = source.rsplit(':').next().expect("n").parse().expect("n");
            assert!(source.contains(sample.name), "{source}");
            let line = f.next().unwrap_or_default();
            let want = String::from_utf8_lossy(raw[n as usize - 1]);
            assert_eq!(line, want.trim_end_matches('\r'), "line {n}");
            (n, reason)
        })
        .collect();
    got.sort();
    assert_eq!(got, rejected, "{}", sample.name);
    assert_eq!(files(&spool.join("inbox")), Vec::<PathBuf>::new());
}

#[test]
fn vhost_combined_split_byte_exact_default_server_to_vhost() {
    split_is_exact(&VHOST_COMBINED);
}

#[test]
fn nginx_main_split_byte_exact_extra_field_trailing_blank_odd_clients() {
    split_is_exact(&NGINX_MAIN);
}

#[test]
fn caddy_json_split_byte_exact_per_request_host() {
    split_is_exact(&CADDY);
}

#[test]
fn without_vhost_the_default_server_line_is_no_vhost() {
    let dir = scratch();
    let sample = Sample {
        name: VHOST_COMBINED.name,
        vhost: None,
    };
    let (_, summary, said) = split_saying(dir.path(), &sample);
    assert_eq!(
        said,
        "pysk-logs: 1 line(s) name no virtual host (combined or common format) and went to \
         rejected/: split such a server's logs with --vhost NAME\n"
    );
    let (outputs, rejected) = expected(&VHOST_COMBINED);
    assert_eq!(summary["rejected"]["no-vhost"], 1);
    let accepted: usize = outputs
        .values()
        .map(|o| o.iter().filter(|&&b| b == b'\n').count())
        .sum();
    assert_eq!(summary["accepted"], accepted - 1);
    assert_eq!(summary["lines"], accepted + rejected.len());
}

#[test]
fn merge_orders_raw_caddy_lines_by_ts_and_passes_them_through() {
    let input = fs::read(formats().join(CADDY.name)).expect("sample");
    let out = tool("pysk-logs")
        .args(["merge", "--reorder", "1000"])
        .arg(formats().join(CADDY.name))
        .succeeds();
    let mut want: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut got: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got.len(), want.len());
    // Lines with a ts come out in time order (also the one split rejects
    // for want of a request); the truncated one, without a ts, right after
    // its predecessor.
    let ts = |l: &[u8]| -> Option<f64> {
        serde_json::from_slice::<serde_json::Value>(l)
            .ok()?
            .get("ts")?
            .as_f64()
    };
    let times: Vec<i64> = got
        .iter()
        .filter_map(|l| ts(l))
        .map(|t| t.floor() as i64)
        .collect();
    assert_eq!(times.len(), want.len() - 1);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "ordered by ts");
    got.sort();
    want.sort();
    assert!(got == want, "the same lines, unchanged");
}

/// Splits `sample`, then has AWStats read each virtual host's output
/// through `merge`: nothing corrupt, every line counted.
fn awstats_reads(sample: &Sample) {
    let Some(awstats) = require("/usr/lib/cgi-bin/awstats.pl", "awstats") else {
        return;
    };
    let dir = scratch();
    let (spool, summary) = split(dir.path(), sample);
    let (outputs, _) = expected(sample);
    for (vhost, want) in &outputs {
        let hits = want.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(summary["vhosts"][vhost], hits);
        let pending: Vec<String> = files(&spool.join("pending").join(vhost))
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let log_file = format!(
            "{} merge {} |",
            bin("pysk-logs").display(),
            pending.join(" ")
        );
        let (out, data) = awstats_update(
            &awstats,
            &dir.path().join(vhost),
            vhost,
            &log_file,
            "DNSLookup=0\n",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("Found 0 corrupted records"), "{text}");
        assert!(
            text.contains(&format!("Parsed lines in file: {hits}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("Found {hits} new qualified records")),
            "{text}"
        );
        assert_eq!(AwstatsDb::load(&data, "052015", vhost).last_line().1, hits);
    }
}

#[test]
fn awstats_reads_split_and_merged_vhost_combined_with_nothing_corrupt() {
    awstats_reads(&VHOST_COMBINED);
}

#[test]
fn awstats_reads_split_and_merged_caddy_log_with_nothing_corrupt() {
    awstats_reads(&CADDY);
}
