//! `install PKG…`: packages installed on every host picked with the
//! host's own manager (apt, pacman or dnf, whichever it has), run as jobs
//! of the same [`fanout`] as `exec`, told the same way.
//!
//! One remote `sh -c` script per host, the same for every run (it reads
//! the names from its stdin, so no list is too long for a command line),
//! detects the manager
//! (`command -v apt-get`, `pacman`, `dnf`), queries each package's
//! installed version before (`dpkg-query` `${Status}`, `pacman -Q`,
//! `rpm -q`), with `--update` refreshes the index (`apt-get update`,
//! `pacman -Sy` with the install made `pacman -Su`, i.e. `-Syu`, as Arch
//! supports no partial upgrade, `dnf makecache`), asks the manager about
//! each missing name (`apt-cache show`, `pacman -Si`/`-Sg`, `dnf info`)
//! so that an unknown one is told per package ([`UNKNOWN`]) and does not
//! fail the others (apt refuses a whole call for one unknown name),
//! installs only the missing known ones, non-interactively, and queries
//! again after. Whether a package was installed or already present is read
//! from those queries, not from the manager's localized messages; the
//! script's stdout holds only its own tab-separated lines ([`BEFORE`],
//! [`AFTER`], [`MANAGER`], [`UNKNOWN`]), the manager's output goes to its
//! stderr and is shown for a host that failed. Package names are checked
//! here first, so no shell text ever reaches a host as a name.
//! `--dry-run` queries and simulates (`apt-get -s`, `pacman -S --print`,
//! `dnf --assumeno`) instead, and refreshes nothing.
//!
//! What a real run did goes through the [`Reporter`] (stderr, hidden by
//! `-q`); a dry run's lines are its plan, on stdout.

use std::collections::BTreeMap;
use std::io::Write;

use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;
use serde::Serialize;

use crate::classify::Class;
use crate::error::HvError;
use crate::exec;
use crate::fanout;
use crate::manager::{self, DETECT};
use crate::summary::{self, Summary};

/// The script's line for a package's version before: `NAME\tVERSION`.
pub const BEFORE: &str = "pysk-hv-before";
/// The script's line for a package's version after.
pub const AFTER: &str = "pysk-hv-after";
/// The script's line naming the manager it found.
pub const MANAGER: &str = "pysk-hv-manager";
/// The script's line for a missing package its manager does not know.
pub const UNKNOWN: &str = "pysk-hv-unknown";

/// The options of `install`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts, ssh, fanout, timeout, state, `--json`, `--dry-run`, as for
    /// `exec`.
    pub run: crate::run::Run,
    /// The packages, as the hosts' managers name them.
    pub packages: Vec<String>,
    /// Refresh the package index before installing.
    pub update: bool,
}

/// The install script after [`DETECT`], `$pkgs`, `$sim` and `$upd` set
/// before it; `q NAME` prints the installed version of NAME or nothing,
/// `k NAME` succeeds when the manager knows NAME.
const INSTALL: &str = r#"q() { case $m in
apt) s=$(dpkg-query -W -f='${Status}\t${Version}' "$1" 2>/dev/null) || s=
  case $s in 'install ok installed	'*) printf '%s' "${s#*	}";; esac;;
pacman) s=$(pacman -Q "$1" 2>/dev/null) && printf '%s' "${s#* }";;
dnf) rpm -q --qf '%{EPOCHNUM}:%{VERSION}-%{RELEASE}' "$1" 2>/dev/null | grep -v ' ';;
esac; }
k() { case $m in
apt) apt-cache show "$1" >/dev/null 2>&1;;
pacman) pacman -Si "$1" >/dev/null 2>&1 || pacman -Sg "$1" >/dev/null 2>&1;;
dnf) dnf -q info "$1" >/dev/null 2>&1;;
esac; }
printf 'pysk-hv-manager\t%s\n' "$m"
missing=
for p in $pkgs; do v=$(q "$p"); printf 'pysk-hv-before\t%s\t%s\n' "$p" "$v"
  [ -n "$v" ] || missing="$missing $p"; done
rc=0; known=
if [ -n "$missing" ] && [ -n "$upd" ]; then case $m in
apt) apt-get update -q >&2;;
pacman) pacman -Sy --noconfirm >&2;;
dnf) dnf -q makecache >&2;;
esac || rc=$?; fi
if [ $rc -eq 0 ]; then for p in $missing; do
  if k "$p"; then known="$known $p"; else printf 'pysk-hv-unknown\t%s\n' "$p"; rc=1; fi; done; fi
if [ -n "$known" ]; then case $m$sim in
apt) DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $known >&2;;
apt1) apt-get install -s -q $known >&2;;
pacman) pacman -S${upd:+u} --noconfirm --needed $known >&2;;
pacman1) pacman -S --print --needed $known >&2;;
dnf) dnf -y install $known >&2;;
dnf1) dnf --assumeno install $known >&2 || [ $? -eq 1 ];;
esac; r=$?; [ $r -eq 0 ] || rc=$r; fi
for p in $pkgs; do v=$(q "$p"); printf 'pysk-hv-after\t%s\t%s\n' "$p" "$v"
  if [ -z "$v$sim" ] && [ $rc -eq 0 ]; then rc=1; fi; done
exit $rc
"#;

/// Refuses a name that is not a package name of Debian, Arch or RPM
/// (letters, digits, `+-._@`, a `:ARCH` suffix; not starting with `-`).
pub fn check_names(names: &[String]) -> Result<(), HvError> {
    for name in names {
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._@:".contains(&b));
        if name.is_empty() || !plain || !name.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(HvError::Package(format!("{name:?}: not a package name")));
        }
    }
    Ok(())
}

/// The whole script, which reads the (checked) names from the first line
/// of its stdin, so that no list is too long for one command line;
/// simulating when `dry_run` (which refreshes nothing), else refreshing
/// the index when `update`.
pub fn script(dry_run: bool, update: bool) -> String {
    format!(
        "IFS= read -r pkgs; exec </dev/null; sim={}; upd={}\n{DETECT}{INSTALL}",
        if dry_run { "1" } else { "" },
        if update && !dry_run { "1" } else { "" }
    )
}

/// What became of one package on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// `installed`, `already present`, `would be installed`, `unknown
    /// package` or `not installed`.
    pub state: &'static str,
    /// The version before, if any.
    pub before: Option<String>,
    /// The version after, if any.
    pub after: Option<String>,
}

/// The packages of a host's script output, in the order asked.
pub fn parse(stdout: &[u8], dry_run: bool) -> (Option<String>, Vec<Package>) {
    let text = String::from_utf8_lossy(stdout);
    let mut manager = None;
    let mut packages: Vec<Package> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let version = |i: usize| {
            fields
                .get(i)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
        };
        match fields[0] {
            MANAGER => manager = version(1),
            BEFORE => packages.push(Package {
                name: fields.get(1).unwrap_or(&"").to_string(),
                state: "not installed",
                before: version(2),
                after: None,
            }),
            UNKNOWN => {
                if let Some(p) = packages
                    .iter_mut()
                    .find(|p| Some(&p.name.as_str()) == fields.get(1))
                {
                    p.state = "unknown package";
                }
            }
            AFTER => {
                if let Some(p) = packages
                    .iter_mut()
                    .find(|p| Some(&p.name.as_str()) == fields.get(1))
                {
                    p.after = version(2);
                }
            }
            _ => {}
        }
    }
    for p in &mut packages {
        p.state = match (&p.before, &p.after) {
            (Some(_), _) => "already present",
            (None, Some(_)) => "installed",
            (None, None) if p.state == "unknown package" => p.state,
            (None, None) if dry_run => "would be installed",
            (None, None) => "not installed",
        };
    }
    (manager, packages)
}

/// The `--json` document of `install`: the run's summary and each host's
/// packages.
#[derive(Debug, Serialize)]
struct Document {
    #[serde(flatten)]
    summary: Summary,
    packages: BTreeMap<String, Vec<Package>>,
}

/// Runs `install`: a line per host and package (on `out` for a dry run,
/// else through `report`), the manager's output of each host that failed
/// (or simulated) through `report`, then the summary.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, HvError> {
    check_names(&options.packages)?;
    let run = &options.run;
    let script = script(run.dry_run, options.update);
    let names = format!("{}\n", options.packages.join(" "));
    let Some(outcomes) = manager::fan(run, &script, names.as_bytes(), &|_, _| Ok(()), report)?
    else {
        return Ok(Outcome::Success);
    };
    let mut doc = BTreeMap::new();
    for o in &outcomes {
        let (_, packages) = parse(&o.stdout, run.dry_run);
        if !run.json {
            tell(run.dry_run, o, &packages, report, out)?;
        }
        doc.insert(o.host.clone(), packages);
    }
    out.flush().map_err(pysk_common::Error::Stdout)?;
    exec::conclude(run, &outcomes, report, || Document {
        summary: Summary {
            dry_run: run.dry_run,
            ..summary::summary(&outcomes, true)
        },
        packages: doc,
    })
}

/// One host's packages, then its manager's output when it failed (a
/// warning) or simulated.
fn tell(
    dry_run: bool,
    o: &fanout::Outcome,
    packages: &[Package],
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<(), HvError> {
    for p in packages {
        let version = p
            .after
            .as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default();
        let line = format!("{}: {}: {}{version}", o.host, p.name, p.state);
        if dry_run {
            writeln!(out, "{line}").map_err(pysk_common::Error::Stdout)?;
        } else {
            report.info(line);
        }
    }
    let failed = o.class != Class::Ok;
    if failed || dry_run {
        out.flush().map_err(pysk_common::Error::Stdout)?;
        for line in String::from_utf8_lossy(&o.stderr).lines() {
            let line = format!("{}: {line}", o.host);
            if failed {
                report.warn(line);
            } else {
                report.info(line);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn package_names_of_every_manager_pass_and_shell_text_does_not() {
        check_names(&names(&[
            "coreutils",
            "libc6:amd64",
            "g++",
            "python3.11",
            "lib32-glibc",
            "qt6-base@x",
        ]))
        .expect("names");
        for bad in ["", "-y", "a b", "a;rm", "$(id)", "a'b", "x\n", "ä"] {
            let err = check_names(&names(&["ok", bad])).expect_err(bad);
            assert_eq!(err.to_string(), format!("{bad:?}: not a package name"));
        }
    }

    #[test]
    fn before_and_after_tell_installed_from_already_present() {
        let out =
            b"pysk-hv-manager\tapt\npysk-hv-before\tcoreutils\t9.1-1\npysk-hv-before\thello\t\n\
                    pysk-hv-before\tnope\t\npysk-hv-after\tcoreutils\t9.1-1\n\
                    pysk-hv-after\thello\t2.10-3\npysk-hv-after\tnope\t\n";
        let (manager, packages) = parse(out, false);
        assert_eq!(manager.as_deref(), Some("apt"));
        let states: Vec<(&str, &str)> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.state))
            .collect();
        assert_eq!(
            states,
            [
                ("coreutils", "already present"),
                ("hello", "installed"),
                ("nope", "not installed")
            ]
        );
        assert_eq!(parse(out, true).1[2].state, "would be installed");
        let out = b"pysk-hv-before\tnope\t\npysk-hv-unknown\tnope\npysk-hv-after\tnope\t\n";
        assert_eq!(parse(out, false).1[0].state, "unknown package");
        assert_eq!(parse(out, true).1[0].state, "unknown package");
    }

    #[test]
    fn on_pacman_update_is_sy_then_su_and_an_unknown_name_is_left_out() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let pacman = format!(
            "#!/bin/sh\necho \"pacman $*\" >> '{d}/log'\ncase $1 in\n\
             -Q) [ \"$2\" = old ] && echo 'old 1.0-1' && exit 0\n\
             [ \"$2\" = new ] && [ -e '{d}/new' ] && echo 'new 2.0-1' && exit 0; exit 1;;\n\
             -Si) [ \"$2\" = new ];;\n-Su) : > '{d}/new';;\n-Sg) exit 1;;\nesac\n"
        );
        let fake = dir.path().join("pacman");
        std::fs::write(&fake, pacman).expect("fake");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", &script(false, true)])
            .env("PATH", dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"old new nope\n").expect("names");
        drop(stdin);
        let out = child.wait_with_output().expect("ends");
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).as_ref()
            ),
            (
                Some(1),
                "pysk-hv-manager\tpacman\npysk-hv-before\told\t1.0-1\n\
                 pysk-hv-before\tnew\t\npysk-hv-before\tnope\t\npysk-hv-unknown\tnope\n\
                 pysk-hv-after\told\t1.0-1\npysk-hv-after\tnew\t2.0-1\npysk-hv-after\tnope\t\n"
            )
        );
        let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
        assert_eq!(
            log,
            "pacman -Q old\npacman -Q new\npacman -Q nope\npacman -Sy --noconfirm\n\
             pacman -Si new\npacman -Si nope\npacman -Sg nope\n\
             pacman -Su --noconfirm --needed new\n\
             pacman -Q old\npacman -Q new\npacman -Q nope\n"
        );
        let states: Vec<&str> = parse(&out.stdout, false)
            .1
            .iter()
            .map(|p| p.state)
            .collect();
        assert_eq!(states, ["already present", "installed", "unknown package"]);
    }
}
