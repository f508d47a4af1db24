//! The hosts a command runs on, picked from the inventory: `-w` node
//! sets, `-g` groups (the inventory's `groups=a,b`), `--rerun` the failed
//! or unreachable hosts of the last run (`last-run.json` in the state
//! directory), less the `-x` node sets; always in inventory order. Every
//! name given must be in the inventory and every group must have a host,
//! so that a typo fails the run (exit 65) instead of quietly leaving a
//! host out — or, for `-x`, in.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use pysk_common::inventory::{Host, Inventory};
use serde::Deserialize;

use crate::classify;
use crate::error::HvError;
use crate::nodeset;
use crate::ssh;

/// The file in the state directory that keeps each host's class of the
/// last run.
pub const LAST_RUN: &str = "last-run.json";

/// Which hosts of the last run `--rerun` picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rerun {
    /// Every host that was not ok (a lost connection included).
    Failed,
    /// The hosts not reached, where the command never ran: unreachable,
    /// host key, auth (not a connection lost after login).
    Unreachable,
}

/// What the command line asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `-w`: node sets (`web[1-5],db1`).
    pub nodes: Vec<String>,
    /// `-g`: group names.
    pub groups: Vec<String>,
    /// `-x`: node sets left out.
    pub exclude: Vec<String>,
    /// `--rerun`.
    pub rerun: Option<Rerun>,
}

/// The hosts picked, and what the admin should hear about the picking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    /// The hosts, in inventory order.
    pub hosts: Vec<Host>,
    /// Hosts of the last run that the inventory no longer lists.
    pub warnings: Vec<String>,
}

/// The hosts of `inventory` (read from `path`) that `selection` names;
/// `state_dir` holds the last run's results for `--rerun`. A selection
/// naming nothing is a usage error; one whose hosts are all excluded
/// gives no hosts.
pub fn pick(
    inventory: &Inventory,
    path: &Path,
    selection: &Selection,
    state_dir: &Path,
) -> Result<Picked, HvError> {
    if selection.nodes.is_empty() && selection.groups.is_empty() && selection.rerun.is_none() {
        return Err(HvError::Usage(
            "name the hosts with -w NODESET, -g GROUP or --rerun".to_owned(),
        ));
    }
    let mut wanted = HashSet::new();
    let mut warnings = Vec::new();
    wanted.extend(named(inventory, path, "-w", &selection.nodes)?);
    wanted.extend(grouped(inventory, path, &selection.groups)?);
    if let Some(rerun) = selection.rerun {
        let file = state_dir.join(LAST_RUN);
        for host in last_run(&file, rerun)? {
            match inventory.get(&host) {
                Some(h) => {
                    wanted.insert(h.name.clone());
                }
                None => warnings.push(format!(
                    "{}: {host}: no longer in the inventory {}; left out",
                    file.display(),
                    path.display()
                )),
            }
        }
    }
    for name in named(inventory, path, "-x", &selection.exclude)? {
        wanted.remove(&name);
    }
    let hosts: Vec<Host> = inventory
        .hosts
        .iter()
        .filter(|h| wanted.contains(&h.name))
        .cloned()
        .collect();
    for host in &hosts {
        ssh::port(host).map_err(|why| pysk_common::Error::Inventory {
            path: path.to_owned(),
            line: host.line,
            reason: format!("{}: {why}", host.name),
        })?;
    }
    Ok(Picked { hosts, warnings })
}

/// The names of the node sets `exprs` given to `option`, each checked
/// against the inventory: the ones it lacks are named in one error.
fn named(
    inventory: &Inventory,
    path: &Path,
    option: &str,
    exprs: &[String],
) -> Result<Vec<String>, HvError> {
    let mut names = Vec::new();
    for expr in exprs {
        let expanded =
            nodeset::expand(expr).map_err(|why| pysk_common::Error::option(option, why))?;
        names.extend(expanded.into_iter().map(|n| n.to_ascii_lowercase()));
    }
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| inventory.get(n).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(HvError::Targets(format!(
            "{option}: not in the inventory {}: {}",
            path.display(),
            nodeset::fold(&unknown)
        )));
    }
    Ok(names)
}

/// The names of the hosts in `groups` (the inventory key `groups=a,b`);
/// a group without a host is an error naming it.
fn grouped(inventory: &Inventory, path: &Path, groups: &[String]) -> Result<Vec<String>, HvError> {
    let mut names = Vec::new();
    let mut empty = Vec::new();
    for group in groups {
        let members: Vec<String> = inventory
            .hosts
            .iter()
            .filter(|h| groups_of(h).any(|g| g == group))
            .map(|h| h.name.clone())
            .collect();
        if members.is_empty() {
            empty.push(group.as_str());
        }
        names.extend(members);
    }
    if !empty.is_empty() {
        return Err(HvError::Targets(format!(
            "-g: no host of the inventory {} is in the group {}",
            path.display(),
            empty.join(", ")
        )));
    }
    Ok(names)
}

/// The groups a host's `groups=` key lists.
fn groups_of(host: &Host) -> impl Iterator<Item = &str> {
    host.settings
        .get("groups")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
}

/// `last-run.json`: `{"version": 1, "hosts": [{"host": …, "class": …}]}`;
/// other fields are the summary's and are not read here.
#[derive(Debug, Deserialize)]
struct LastRun {
    version: u32,
    hosts: Vec<LastHost>,
}

/// One host of the last run.
#[derive(Debug, Deserialize)]
struct LastHost {
    host: String,
    class: String,
}

/// The hosts of the last run (`file`) that `rerun` picks, in its order.
fn last_run(file: &Path, rerun: Rerun) -> Result<Vec<String>, HvError> {
    let text = fs::read_to_string(file).map_err(pysk_common::error::read_err(file))?;
    let bad = |reason: String| HvError::LastRun {
        path: PathBuf::from(file),
        reason,
    };
    let run: LastRun = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if run.version != 1 {
        return Err(bad(format!("version {}, this tool reads 1", run.version)));
    }
    let mut picked = Vec::new();
    for LastHost { host, class } in run.hosts {
        if !classify::NAMES.contains(&class.as_str()) {
            return Err(bad(format!("{host}: unknown class {class:?}")));
        }
        let wanted = match rerun {
            Rerun::Failed => class != "ok",
            Rerun::Unreachable => classify::NOT_REACHED.contains(&class.as_str()),
        };
        if wanted {
            picked.push(host);
        }
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pysk_common::exit::ToolError;

    const HOSTS: &str = "\
web1 192.0.2.1 groups=web
web2 groups=web,db
web10 port=2222 groups=web
db1 groups=db
mail
";

    fn inventory() -> Inventory {
        Inventory::parse(HOSTS, Path::new("/etc/pysk/hosts")).expect("parses")
    }

    fn select(selection: Selection, state: &Path) -> Result<Picked, HvError> {
        pick(
            &inventory(),
            Path::new("/etc/pysk/hosts"),
            &selection,
            state,
        )
    }

    fn names(selection: Selection, state: &Path) -> Vec<String> {
        let picked = select(selection, state).expect("picks");
        picked.hosts.into_iter().map(|h| h.name).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn nodes(items: &[&str]) -> Selection {
        Selection {
            nodes: strings(items),
            ..Selection::default()
        }
    }

    fn no_state() -> PathBuf {
        PathBuf::from("/nonexistent/state")
    }

    #[test]
    fn node_sets_pick_hosts_in_inventory_order() {
        assert_eq!(
            names(nodes(&["mail,web[10,1]", "DB1"]), &no_state()),
            ["web1", "web10", "db1", "mail"]
        );
    }

    #[test]
    fn names_not_in_the_inventory_are_named_and_exit_65() {
        let err = select(nodes(&["web[1-4],mail,nope"]), &no_state()).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "-w: not in the inventory /etc/pysk/hosts: nope,web[3-4]"
        );
        assert_eq!(err.exit_code(), 65);
        let exclude = Selection {
            exclude: strings(&["web9"]),
            ..nodes(&["web1"])
        };
        assert_eq!(
            select(exclude, &no_state())
                .expect_err("unknown")
                .to_string(),
            "-x: not in the inventory /etc/pysk/hosts: web9"
        );
    }

    #[test]
    fn a_bad_node_set_is_a_usage_error() {
        let err = select(nodes(&["web[3-1]"]), &no_state()).expect_err("bad range");
        assert_eq!(
            err.to_string(),
            "-w: \"web[3-1]\": bad range \"3-1\": the first number is above the last"
        );
        assert_eq!(err.exit_code(), 2);
        let err = select(Selection::default(), &no_state()).expect_err("nothing named");
        assert_eq!(
            err.to_string(),
            "name the hosts with -w NODESET, -g GROUP or --rerun"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn groups_come_from_the_inventory_and_add_to_node_sets() {
        let db = Selection {
            groups: strings(&["db"]),
            ..nodes(&["mail"])
        };
        assert_eq!(names(db, &no_state()), ["web2", "db1", "mail"]);
        let err = select(
            Selection {
                groups: strings(&["web", "dns", "ftp"]),
                ..Selection::default()
            },
            &no_state(),
        )
        .expect_err("empty groups");
        assert_eq!(
            err.to_string(),
            "-g: no host of the inventory /etc/pysk/hosts is in the group dns, ftp"
        );
        assert_eq!(err.exit_code(), 65);
    }

    #[test]
    fn excluded_node_sets_are_removed() {
        let selection = Selection {
            groups: strings(&["web"]),
            exclude: strings(&["web[1-2]"]),
            ..Selection::default()
        };
        assert_eq!(names(selection, &no_state()), ["web10"]);
        let all_out = Selection {
            exclude: strings(&["mail"]),
            ..nodes(&["mail"])
        };
        assert_eq!(names(all_out, &no_state()), Vec::<String>::new());
    }

    fn state(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(LAST_RUN), json).expect("write");
        dir
    }

    const LAST: &str = r#"{"version": 1, "hosts": [
        {"host": "mail", "class": "unreachable", "duration": 0.2},
        {"host": "web1", "class": "lost"},
        {"host": "web2", "class": "exit"},
        {"host": "web10", "class": "host-key"},
        {"host": "db1", "class": "auth"},
        {"host": "gone.example", "class": "signal"}
    ]}"#;

    #[test]
    fn rerun_failed_picks_every_host_not_ok_and_unreachable_those_not_reached() {
        let dir = state(LAST);
        let rerun = |r| Selection {
            rerun: Some(r),
            ..Selection::default()
        };
        assert_eq!(
            names(rerun(Rerun::Failed), dir.path()),
            ["web1", "web2", "web10", "db1", "mail"]
        );
        assert_eq!(
            names(rerun(Rerun::Unreachable), dir.path()),
            ["web10", "db1", "mail"]
        );
        let picked = select(rerun(Rerun::Failed), dir.path()).expect("picks");
        assert_eq!(
            picked.warnings,
            [format!(
                "{}: gone.example: no longer in the inventory /etc/pysk/hosts; left out",
                dir.path().join(LAST_RUN).display()
            )]
        );
        let with_x = Selection {
            exclude: strings(&["mail"]),
            ..rerun(Rerun::Unreachable)
        };
        assert_eq!(names(with_x, dir.path()), ["web10", "db1"]);
    }

    #[test]
    fn a_missing_or_malformed_last_run_is_an_error_naming_the_file() {
        let rerun = Selection {
            rerun: Some(Rerun::Failed),
            ..Selection::default()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(LAST_RUN);
        let err = select(rerun.clone(), dir.path()).expect_err("missing");
        assert_eq!(
            err.to_string(),
            format!("{}: cannot read: No such file or directory", file.display())
        );
        assert_eq!(err.exit_code(), 66);
        for (json, reason) in [
            (
                r#"{"version": 2, "hosts": []}"#,
                "version 2, this tool reads 1",
            ),
            (
                r#"{"version": 1, "hosts": [{"host": "mail", "class": "fine"}]}"#,
                "mail: unknown class \"fine\"",
            ),
        ] {
            let dir = state(json);
            let err = select(rerun.clone(), dir.path()).expect_err(json);
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: not the results of a run: {reason}",
                    dir.path().join(LAST_RUN).display()
                )
            );
            assert_eq!(err.exit_code(), 65);
        }
        let dir = state("[]");
        assert!(select(rerun, dir.path()).is_err());
    }

    #[test]
    fn a_bad_port_of_a_picked_host_is_an_inventory_error() {
        let inventory = Inventory::parse("a port=x\nb port=0\n", Path::new("/h")).expect("parses");
        let err =
            pick(&inventory, Path::new("/h"), &nodes(&["b"]), &no_state()).expect_err("bad port");
        assert_eq!(
            err.to_string(),
            "/h:2: b: port=\"0\": not a port (1 to 65535)"
        );
        assert_eq!(err.exit_code(), 78);
    }
}
