//! What a run tells about its hosts: a line on stderr for each host that
//! was not ok, the counts per class and the slowest hosts; `--gather`'s
//! grouped output; the `--json` document, which is also what
//! `last-run.json` keeps (without the output) for `--rerun`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use pysk_common::atomic;
use serde::Serialize;

use crate::classify::{COUNTED, Class, NAMES};
use crate::error::HvError;
use crate::fanout::{self, Outcome};
use crate::nodeset;
use crate::targets::LAST_RUN;

/// The hosts named in the summary line as the slowest.
const SLOWEST: usize = 3;

/// The `--json` document of a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Always false: a dry run prints a [`Plan`].
    pub dry_run: bool,
    /// Each host, in inventory order.
    pub hosts: Vec<HostResult>,
    /// Hosts per class name, for the classes that occurred.
    pub counts: BTreeMap<&'static str, usize>,
}

/// One host's result.
#[derive(Debug, Serialize)]
pub struct HostResult {
    /// The host.
    pub host: String,
    /// Its class's name (`ok`, `exit`, `signal`, `unreachable`, `lost`,
    /// `host-key`, `auth`, `timed-out`).
    pub class: &'static str,
    /// The class in words (`exit 7`, `host key changed`, `timed out, may
    /// still be running`).
    pub result: String,
    /// The exit status, for `exit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Seconds from the start of its ssh to its end.
    pub duration: f64,
    /// What ssh said about a host it did not get into.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The remote stdout (invalid UTF-8 replaced), in `--json` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// The remote stderr, in `--json` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// The output kept was cut at [`fanout::KEEP`] bytes a stream (shown
    /// only when so).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The `--json` document of a dry run.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Always true.
    pub dry_run: bool,
    /// Each host's ssh command line.
    pub hosts: Vec<PlannedHost>,
}

/// One host of a dry run.
#[derive(Debug, Serialize)]
pub struct PlannedHost {
    /// The host.
    pub host: String,
    /// The ssh command line that would run.
    pub argv: Vec<String>,
}

/// The summary of `outcomes`, with each host's output when `output`.
pub fn summary(outcomes: &[Outcome], output: bool) -> Summary {
    let mut counts = BTreeMap::new();
    let hosts = outcomes
        .iter()
        .map(|o| {
            *counts.entry(o.class.name()).or_insert(0) += 1;
            let text = |bytes: &[u8]| output.then(|| String::from_utf8_lossy(bytes).into_owned());
            HostResult {
                host: o.host.clone(),
                class: o.class.name(),
                result: o.class.to_string(),
                exit: match o.class {
                    Class::Exit(code) => Some(code),
                    _ => None,
                },
                duration: o.duration.as_secs_f64(),
                message: o.message.clone(),
                stdout: text(&o.stdout),
                stderr: text(&o.stderr),
                truncated: o.truncated,
            }
        })
        .collect();
    Summary {
        dry_run: false,
        hosts,
        counts,
    }
}

/// The lines for stderr: one warning per host that was not ok, one per
/// host whose output kept was cut, then the summary (`5 hosts: 3 ok, 1
/// exited non-zero, 1 unreachable; slowest: …`).
pub fn lines(outcomes: &[Outcome]) -> (Vec<String>, String) {
    let not_ok = outcomes
        .iter()
        .filter(|o| o.class != Class::Ok)
        .map(|o| match &o.message {
            Some(said) => format!("{}: {}: {said}", o.host, o.class),
            None => format!("{}: {}", o.host, o.class),
        });
    let cut = outcomes.iter().filter(|o| o.truncated).map(|o| {
        format!(
            "{}: output truncated: only the first {} MiB of each stream kept",
            o.host,
            fanout::KEEP >> 20
        )
    });
    let warnings = not_ok.chain(cut).collect();
    let counts: Vec<String> = NAMES
        .iter()
        .zip(COUNTED)
        .filter_map(|(name, words)| {
            let n = outcomes.iter().filter(|o| o.class.name() == *name).count();
            (n > 0).then(|| format!("{n} {words}"))
        })
        .collect();
    let mut slowest: Vec<&Outcome> = outcomes.iter().collect();
    slowest.sort_by(|a, b| b.duration.cmp(&a.duration).then(a.host.cmp(&b.host)));
    let slowest: Vec<String> = slowest
        .iter()
        .take(SLOWEST)
        .map(|o| format!("{} {:.2} s", o.host, o.duration.as_secs_f64()))
        .collect();
    let hosts = match outcomes.len() {
        1 => "1 host".to_owned(),
        n => format!("{n} hosts"),
    };
    let info = format!(
        "{hosts}: {}; slowest: {}",
        counts.join(", "),
        slowest.join(", ")
    );
    (warnings, info)
}

/// `--gather`: each distinct stdout once, under the hosts that gave it
/// with the same result (as `clush -b`: the largest group first, a
/// 15-dash line above and below the folded host names and their count),
/// a group that was not ok with its result beside its names (`web3 (exit
/// 3)`, `web[1-2] (2, exit 3)`), so that the same output with another
/// result stays told apart; hosts without output are left out.
pub fn gather(outcomes: &[Outcome], out: &mut dyn Write) -> io::Result<()> {
    let mut groups: BTreeMap<(&[u8], String), Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| !o.stdout.is_empty()) {
        groups
            .entry((o.stdout.as_slice(), o.class.to_string()))
            .or_default()
            .push(o);
    }
    let mut groups: Vec<(String, usize, Class, &[u8])> = groups
        .into_iter()
        .map(|((text, _), group)| {
            let hosts: Vec<String> = group.iter().map(|o| o.host.clone()).collect();
            (nodeset::fold(&hosts), hosts.len(), group[0].class, text)
        })
        .collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rule = "-".repeat(15);
    for (names, count, class, text) in groups {
        let header = header(&names, count, class);
        writeln!(out, "{rule}\n{header}\n{rule}")?;
        out.write_all(text)?;
        if !text.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

/// A `--gather` group's header: the folded host `names`, their `count`
/// when more than one, and `class` when it is not ok.
fn header(names: &str, count: usize, class: Class) -> String {
    match (count, class) {
        (1, Class::Ok) => names.to_owned(),
        (n, Class::Ok) => format!("{names} ({n})"),
        (1, class) => format!("{names} ({class})"),
        (n, class) => format!("{names} ({n}, {class})"),
    }
}

/// Writes `last-run.json` into `state_dir` (made when missing), atomic
/// and owner-only: the summary without the output. With `merge` (a
/// `--rerun`), the hosts of the record there that this run did not run
/// keep their entries and place, and the counts are those of the whole.
pub fn record(state_dir: &Path, outcomes: &[Outcome], merge: bool) -> Result<(), HvError> {
    fs::create_dir_all(state_dir).map_err(pysk_common::error::write_err(state_dir))?;
    let file = state_dir.join(LAST_RUN);
    let now = summary(outcomes, false);
    let text = if merge {
        let hosts = merged(&file, &now.hosts)?;
        pysk_common::report::json(&Recorded {
            dry_run: false,
            counts: counts(&hosts),
            hosts,
        })?
    } else {
        pysk_common::report::json(&now)?
    } + "\n";
    let options = atomic::Options {
        mode: Some(0o600),
        ..atomic::Options::default()
    };
    atomic::replace(&file, text.as_bytes(), options)?;
    Ok(())
}

/// `last-run.json` as a merge writes it: hosts kept as they were read.
#[derive(Serialize)]
struct Recorded {
    dry_run: bool,
    hosts: Vec<serde_json::Value>,
    counts: BTreeMap<String, usize>,
}

/// The hosts of the record in `file` (none when it is missing), each one
/// of `now` replacing the entry of its name, the others appended.
fn merged(file: &Path, now: &[HostResult]) -> Result<Vec<serde_json::Value>, HvError> {
    let bad = |reason: String| HvError::LastRun {
        path: file.to_owned(),
        reason,
    };
    let mut hosts: Vec<serde_json::Value> = match fs::read_to_string(file) {
        Ok(text) => {
            let old: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            match old.get("hosts") {
                Some(serde_json::Value::Array(hosts)) => hosts.clone(),
                _ => return Err(bad("no \"hosts\" list".to_owned())),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(pysk_common::error::read_err(file)(e).into()),
    };
    for host in now {
        let value = serde_json::to_value(host).map_err(|e| bad(e.to_string()))?;
        match hosts.iter_mut().find(|h| h["host"] == host.host.as_str()) {
            Some(old) => *old = value,
            None => hosts.push(value),
        }
    }
    Ok(hosts)
}

/// Hosts per class name of recorded `hosts`.
fn counts(hosts: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for class in hosts.iter().filter_map(|h| h["class"].as_str()) {
        *counts.entry(class.to_owned()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(host: &str, class: Class, millis: u64, stdout: &str) -> Outcome {
        Outcome {
            host: host.to_owned(),
            class,
            duration: Duration::from_millis(millis),
            message: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
            stdout_bytes: stdout.len() as u64,
            truncated: false,
        }
    }

    fn fleet() -> Vec<Outcome> {
        let mut closed = outcome("closed", Class::Unreachable, 5, "");
        closed.message =
            Some("ssh: connect to host 127.0.0.1 port 60871: Connection refused".to_owned());
        vec![
            outcome("h1", Class::Ok, 300, "AAA\n"),
            outcome("h2", Class::Ok, 1250, "ZZZ\n"),
            outcome("h3", Class::Ok, 310, "MMM\n"),
            outcome("h4", Class::Ok, 320, "MMM\n"),
            outcome("h5", Class::Exit(3), 900, "AAA\n"),
            outcome("h6", Class::Ok, 330, "AAA\n"),
            outcome("h7", Class::Ok, 340, "MMM"),
            outcome("h8", Class::Exit(3), 350, "AAA\n"),
            closed,
        ]
    }

    #[test]
    fn the_lines_name_each_host_not_ok_and_count_the_classes() {
        let (warnings, info) = lines(&fleet());
        assert_eq!(
            warnings,
            [
                "h5: exit 3",
                "h8: exit 3",
                "closed: unreachable: ssh: connect to host 127.0.0.1 port 60871: Connection refused"
            ]
        );
        assert_eq!(
            info,
            "9 hosts: 6 ok, 2 exited non-zero, 1 unreachable; slowest: h2 1.25 s, h5 0.90 s, h8 0.35 s"
        );
        let (_, one) = lines(&fleet()[..1]);
        assert_eq!(one, "1 host: 1 ok; slowest: h1 0.30 s");
    }

    #[test]
    fn gather_groups_identical_output_and_result_largest_first() {
        let mut out = Vec::new();
        gather(&fleet(), &mut out).expect("writes");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "---------------\nh[1,6] (2)\n---------------\nAAA\n\
             ---------------\nh[3-4] (2)\n---------------\nMMM\n\
             ---------------\nh[5,8] (2, exit 3)\n---------------\nAAA\n\
             ---------------\nh2\n---------------\nZZZ\n\
             ---------------\nh7\n---------------\nMMM\n"
        );
    }

    #[test]
    fn output_cut_at_keep_is_said_and_marked_in_the_json() {
        let mut cut = outcome("h1", Class::Ok, 10, "x");
        cut.truncated = true;
        let (warnings, _) = lines(std::slice::from_ref(&cut));
        assert_eq!(
            warnings,
            ["h1: output truncated: only the first 1 MiB of each stream kept"]
        );
        let doc = pysk_common::report::json(&summary(&[cut], true)).expect("json");
        let value: serde_json::Value = serde_json::from_str(&doc).expect("parses");
        assert_eq!(value["hosts"][0]["truncated"], true);
    }

    #[test]
    fn the_json_summary_has_each_host_and_the_counts() {
        let doc = pysk_common::report::json(&summary(&fleet()[4..5], true)).expect("json");
        let value: serde_json::Value = serde_json::from_str(&doc).expect("parses");
        assert_eq!(
            value,
            serde_json::json!({
                "version": 1,
                "dry_run": false,
                "hosts": [{
                    "host": "h5", "class": "exit", "result": "exit 3", "exit": 3,
                    "duration": 0.9, "stdout": "AAA\n", "stderr": ""
                }],
                "counts": {"exit": 1}
            })
        );
    }

    #[test]
    fn the_last_run_is_written_owner_only_and_read_back_by_rerun() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        record(&state, &fleet(), false).expect("records");
        let file = state.join(LAST_RUN);
        let mode = fs::metadata(&file).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let value: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&file).expect("reads")).expect("json");
        assert_eq!(value["version"], 1);
        assert_eq!(value["hosts"][4]["class"], "exit");
        assert_eq!(value["hosts"][8]["host"], "closed");
        assert!(value["hosts"][0].get("stdout").is_none());
    }

    #[test]
    fn a_rerun_updates_its_hosts_and_keeps_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        record(dir.path(), &fleet(), false).expect("records");
        let again = [
            outcome("closed", Class::Ok, 5, ""),
            outcome("new", Class::Exit(2), 5, ""),
        ];
        record(dir.path(), &again, true).expect("merges");
        let text = fs::read_to_string(dir.path().join(LAST_RUN)).expect("reads");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let classes: Vec<(&str, &str)> = value["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .map(|h| {
                let s = |k: &str| h[k].as_str().expect("string");
                (s("host"), s("class"))
            })
            .collect();
        assert_eq!(
            classes,
            [
                ("h1", "ok"),
                ("h2", "ok"),
                ("h3", "ok"),
                ("h4", "ok"),
                ("h5", "exit"),
                ("h6", "ok"),
                ("h7", "ok"),
                ("h8", "exit"),
                ("closed", "ok"),
                ("new", "exit")
            ]
        );
        assert_eq!(value["counts"], serde_json::json!({"ok": 7, "exit": 3}));
        assert_eq!(value["version"], 1);
    }
}
