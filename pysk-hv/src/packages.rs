//! `packages [--baseline HOST]`: the installed packages of every host
//! picked, compared: hosts with identical sets make one column (named
//! with [`nodeset::fold`]), and only the packages whose versions differ
//! between columns, or that a column lacks, make rows.
//!
//! Each host runs one script (a job of the same [`fanout`] as `exec`,
//! classes, summary and `last-run.json` alike) that detects its manager
//! as `install` does and lists `NAME\tVERSION`: `dpkg-query` of the
//! packages whose status is `ii` (`${binary:Package}`, so `:amd64` where
//! several architectures may be installed), `pacman -Q`, `rpm -qa`
//! (`NAME.ARCH`, `EPOCH:VERSION-RELEASE`). `--baseline HOST` (any case,
//! as `-w`) must be in the inventory and among the hosts picked, checked
//! before any host is contacted (exit 2); it puts HOST's column first and
//! marks what equals it. A baseline host that ends not ok is warned about
//! and the matrix printed without a baseline (the run exits 1 anyway).
//! There is no `--dry-run`: listing changes nothing.

use std::collections::BTreeMap;
use std::io::Write;

use pysk_common::exit::Outcome;
use pysk_common::inventory::{Host, Inventory};
use pysk_common::report::Reporter;
use serde::Serialize;

use crate::classify::Class;
use crate::error::HvError;
use crate::exec;
use crate::manager::{self, DETECT};
use crate::nodeset;
use crate::summary::Summary;

/// The listing after [`DETECT`]: `NAME\tVERSION` per installed package.
const LIST: &str = r#"case $m in
apt) s=$(dpkg-query -W -f='${db:Status-Abbrev}\t${binary:Package}\t${Version}\n') || exit
  printf '%s\n' "$s" | grep '^ii ' | cut -f2,3;;
pacman) s=$(pacman -Q); rc=$?; [ $rc -le 1 ] || exit $rc
  [ -z "$s" ] || printf '%s\n' "$s" | tr ' ' '\t';;
dnf) rpm -qa --qf '%{NAME}.%{ARCH}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n';;
esac
"#;

/// The options of `packages`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts, ssh, fanout, timeout, state, `--json`, as for `exec`
    /// (never a dry run).
    pub run: crate::run::Run,
    /// Show only the differences from this host's packages (lowercase).
    pub baseline: Option<String>,
}

/// A host's packages: name to version.
type Set = BTreeMap<String, String>;

/// Hosts with identical sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Their names, folded (`web[1-3]`).
    pub name: String,
    /// Their names.
    pub hosts: Vec<String>,
    /// How many packages they have.
    pub packages: usize,
    #[serde(skip)]
    set: Set,
}

/// A package whose versions differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Its name.
    pub package: String,
    /// Its version in each group, in the groups' order; `None`: missing.
    pub versions: Vec<Option<String>>,
}

/// The `--json` document of `packages`.
#[derive(Debug, Serialize)]
struct Document {
    #[serde(flatten)]
    summary: Summary,
    baseline: Option<String>,
    groups: Vec<Group>,
    rows: Vec<Row>,
}

/// A listing as a set (lines without a tab ignored).
pub fn parse(stdout: &[u8]) -> Set {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Groups hosts (in the order given) by identical sets, the largest
/// group first, then by name.
pub fn group(hosts: Vec<(String, Set)>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (host, set) in hosts {
        match groups.iter_mut().find(|g| g.set == set) {
            Some(g) => g.hosts.push(host),
            None => groups.push(Group {
                name: String::new(),
                hosts: vec![host],
                packages: set.len(),
                set,
            }),
        }
    }
    for g in &mut groups {
        g.name = nodeset::fold(&g.hosts);
    }
    groups.sort_by(|a, b| b.hosts.len().cmp(&a.hosts.len()).then(a.name.cmp(&b.name)));
    groups
}

/// The rows: the packages not the same in every group.
pub fn rows(groups: &[Group]) -> Vec<Row> {
    let mut names: Vec<&String> = groups.iter().flat_map(|g| g.set.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let versions: Vec<Option<String>> =
                groups.iter().map(|g| g.set.get(name).cloned()).collect();
            versions.iter().any(|v| *v != versions[0]).then(|| Row {
                package: name.clone(),
                versions,
            })
        })
        .collect()
}

/// Moves the group of `host` first, for `--baseline`.
pub fn baseline_first(groups: &mut [Group], host: &str) -> Result<(), HvError> {
    let index = groups
        .iter()
        .position(|g| g.hosts.iter().any(|h| h == host))
        .ok_or_else(|| {
            HvError::Usage(format!(
                "--baseline {host}: not among the hosts that answered"
            ))
        })?;
    groups[..=index].rotate_right(1);
    Ok(())
}

/// The matrix as text: a header `PACKAGE` and the groups' names, a line
/// per row, columns two spaces apart, `-` for a missing package; with
/// `baseline`, a version the same as the first column's is `=`.
pub fn matrix(groups: &[Group], rows: &[Row], baseline: bool) -> String {
    let mut table: Vec<Vec<&str>> = vec![
        std::iter::once("PACKAGE")
            .chain(groups.iter().map(|g| g.name.as_str()))
            .collect(),
    ];
    for row in rows {
        table.push(
            std::iter::once(row.package.as_str())
                .chain(row.versions.iter().enumerate().map(|(i, v)| {
                    if baseline && i > 0 && *v == row.versions[0] {
                        "="
                    } else {
                        v.as_deref().unwrap_or("-")
                    }
                }))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..=groups.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// Runs `packages`: the matrix of the hosts that ended ok on `out`, then
/// the summary.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, HvError> {
    let run = &options.run;
    let baseline = options.baseline.as_deref();
    let check = |inventory: &Inventory, hosts: &[Host]| check_baseline(baseline, inventory, hosts);
    let script = format!("{DETECT}{LIST}");
    let Some(outcomes) = manager::fan(run, &script, b"", &check, report)? else {
        return Ok(Outcome::Success);
    };
    let sets: Vec<(String, Set)> = outcomes
        .iter()
        .filter(|o| o.class == Class::Ok)
        .map(|o| (o.host.clone(), parse(&o.stdout)))
        .collect();
    let mut groups = group(sets);
    let baseline = baseline.filter(|host| {
        let answered = baseline_first(&mut groups, host).is_ok();
        if !answered {
            report.warn(format!(
                "--baseline {host}: not ok, the matrix has no baseline"
            ));
        }
        answered
    });
    let rows = rows(&groups);
    if !run.json {
        let text = matrix(&groups, &rows, baseline.is_some());
        out.write_all(text.as_bytes())
            .map_err(pysk_common::Error::Stdout)?;
    }
    out.flush().map_err(pysk_common::Error::Stdout)?;
    exec::conclude(run, &outcomes, report, || Document {
        summary: crate::summary::summary(&outcomes, false),
        baseline: baseline.map(str::to_owned),
        groups,
        rows,
    })
}

/// Refuses a `baseline` the inventory lacks or that is not among the
/// `picked` hosts.
fn check_baseline(
    baseline: Option<&str>,
    inventory: &Inventory,
    picked: &[Host],
) -> Result<(), HvError> {
    let Some(host) = baseline else {
        return Ok(());
    };
    if inventory.get(host).is_none() {
        return Err(HvError::Usage(format!(
            "--baseline {host}: not in the inventory"
        )));
    }
    if !picked.iter().any(|h| h.name == host) {
        return Err(HvError::Usage(format!(
            "--baseline {host}: not among the hosts picked"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Set {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fleet() -> Vec<Group> {
        let common = [("bash", "5.2"), ("coreutils", "9.1")];
        let mut odd = set(&common);
        odd.insert("coreutils".into(), "9.4".into());
        odd.insert("nginx".into(), "1.22".into());
        group(vec![
            ("web1".into(), set(&common)),
            ("db1".into(), odd),
            ("web2".into(), set(&common)),
            ("web3".into(), set(&common)),
        ])
    }

    /// Runs [`LIST`] for manager `m` with `dir` first in `PATH`.
    fn list(m: &str, dir: &std::path::Path) -> std::process::Output {
        let path = format!("{}:/usr/bin:/bin", dir.display());
        std::process::Command::new("sh")
            .args(["-c", &format!("m={m}\n{LIST}")])
            .env("PATH", path)
            .output()
            .expect("sh runs")
    }

    #[test]
    fn a_listing_keeps_installed_packages_and_a_failed_query_fails() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("fake");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        fake("dpkg-query", "printf 'ii \\tbash\\t5.2\\nrc \\told\\t1\\n'");
        fake(
            "pacman",
            "echo 'error: could not open database' >&2; exit 2",
        );
        let out = list("apt", dir.path());
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(0), &b"bash\t5.2\n"[..])
        );
        assert_eq!(list("pacman", dir.path()).status.code(), Some(2));
        fake("pacman", "exit 1");
        let out = list("pacman", dir.path());
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(0), &b""[..])
        );
        fake("dpkg-query", "exit 2");
        assert_eq!(list("apt", dir.path()).status.code(), Some(2));
    }

    #[test]
    fn a_listing_is_read_by_tab() {
        assert_eq!(
            parse(b"bash\t5.2-1\nlibc6:amd64\t2.36-9\nnoise\n"),
            set(&[("bash", "5.2-1"), ("libc6:amd64", "2.36-9")])
        );
    }

    #[test]
    fn identical_sets_make_one_column_and_only_differences_make_rows() {
        let groups = fleet();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["web[1-3]", "db1"]);
        assert_eq!(
            matrix(&groups, &rows(&groups), false),
            "PACKAGE    web[1-3]  db1\ncoreutils  9.1       9.4\nnginx      -         1.22\n"
        );
        assert_eq!(rows(&groups[..1]), []);
    }

    #[test]
    fn a_baseline_comes_first_and_what_equals_it_is_marked() {
        let mut groups = fleet();
        groups.extend(group(vec![(
            "x".into(),
            set(&[("bash", "5.2"), ("coreutils", "9.4")]),
        )]));
        baseline_first(&mut groups, "db1").expect("db1 answered");
        assert_eq!(
            matrix(&groups, &rows(&groups), true),
            "PACKAGE    db1   web[1-3]  x\ncoreutils  9.4   9.1       =\nnginx      1.22  -         -\n"
        );
        let err = baseline_first(&mut groups, "nope").expect_err("not a host");
        assert_eq!(
            err.to_string(),
            "--baseline nope: not among the hosts that answered"
        );
    }
}
