//! Every switch of `pysk-hv`, with its built-in default written once in
//! [`SWITCHES`]: the command line beats the switch, which beats the
//! default, and each bad value is reported where it came from (the
//! switch's file and line, or the option).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use pysk_common::cli::CommonArgs;
use pysk_common::settings::{Settings, Spec};

use crate::cli::{
    ConfArgs, ConnectArgs, CopyArgs, CreateArgs, ExecArgs, FetchArgs, InstallArgs, MacArgs,
    PackagesArgs, TargetArgs,
};
use crate::conf;
use crate::create::{
    self, options::check_name, options::keys, options::parse_ip, options::parse_size,
};
use crate::error::HvError;
use crate::exec;
use crate::install;
use crate::mac;
use crate::packages;
use crate::run::Run;
use crate::ssh::Ssh;
use crate::targets::Selection;
use crate::transfer::{self, Transfer};

/// The most hosts at once: each ssh holds a few descriptors and about
/// 8 MB.
pub const MAX_FANOUT: u16 = 1024;

/// The switches `pysk-hv` reads, with their built-in defaults.
pub const SWITCHES: &[Spec] = &[
    Spec::new(
        "hv_state_dir",
        "/var/lib/pysk/hv",
        "where the last run's class of each host is kept (last-run.json, for --rerun)",
    ),
    Spec::new("hv_fanout", "32", "how many hosts are reached at once").option("--fanout"),
    Spec::new(
        "hv_connect_timeout",
        "10",
        "seconds each host's connection may take (ssh's ConnectTimeout, whole seconds)",
    )
    .option("--connect-timeout"),
    Spec::new(
        "hv_timeout",
        "0",
        "seconds a command may run on each host before it is ended there; 0: no limit",
    )
    .option("--timeout"),
    Spec::new(
        "hv_ssh_options",
        "",
        "further ssh options, split at blanks, given after pysk-hv's own (-F FILE, -J JUMP)",
    ),
    Spec::new("hv_user", "root", "the account to log in as on each host").option("--user"),
    Spec::new(
        "hv_vm_dir",
        "/etc/pysk/vms",
        "where the virtual servers' definitions are (their MAC addresses are in use)",
    ),
    Spec::new(
        "hv_conf_tree",
        "/etc/pysk/conf",
        "the configuration tree pushed onto each host",
    ),
    Spec::new(
        "hv_release",
        "bookworm",
        "the Debian release a new virtual server is made with",
    ),
    Spec::new(
        "hv_mirror",
        "http://deb.debian.org/debian",
        "the package mirror a new virtual server is made from",
    ),
    Spec::new(
        "hv_vm_root",
        "/srv/vm",
        "where create puts a virtual server's disk (a directory, an image file) and mount point",
    ),
    Spec::new(
        "hv_vg",
        "vg0",
        "the LVM volume group of create --backend lvm",
    ),
    Spec::new(
        "hv_gateway",
        "",
        "the gateway of a new virtual server; empty: none",
    ),
    Spec::new(
        "hv_dns",
        "",
        "the name servers of a new virtual server (blanks or commas between)",
    ),
    Spec::new(
        "hv_authorized_keys",
        "",
        "the file copied to a new virtual server's /root/.ssh/authorized_keys; empty: none",
    ),
    Spec::new(
        "hv_bridge",
        "br0",
        "the bridge a new virtual server's network device joins",
    ),
    Spec::new(
        "hv_unit_dir",
        "/etc/systemd/system",
        "where create writes and enables a virtual server's systemd unit",
    ),
    Spec::new(
        "hv_wait",
        "0",
        "seconds a run that takes the tool's lock waits for another's",
    )
    .option("--wait"),
];

/// The inventory: `<config-dir>/hosts`.
pub fn inventory(common: &CommonArgs) -> PathBuf {
    common.config_dir.join("hosts")
}

/// Where the last run's results are kept.
pub fn state_dir(settings: &Settings) -> Result<PathBuf, HvError> {
    Ok(settings.path("hv_state_dir", None)?)
}

/// The hosts the command line names.
pub fn selection(args: &TargetArgs) -> Selection {
    Selection {
        nodes: args.nodes.clone(),
        groups: args.groups.iter().map(|g| g.trim().to_owned()).collect(),
        exclude: args.exclude.clone(),
        rerun: args.rerun,
    }
}

/// How every host is reached: connection timeout, user, host key policy,
/// the extra ssh options.
pub fn ssh(settings: &Settings, args: &ConnectArgs) -> Result<Ssh, HvError> {
    Ok(Ssh {
        connect_timeout: settings.timeout("hv_connect_timeout", args.connect_timeout.as_deref())?,
        accept_new: args.accept_new,
        user: settings.with("hv_user", args.user.as_deref(), user)?,
        options: settings.with("hv_ssh_options", None, |text| {
            Ok(text.split_ascii_whitespace().map(str::to_owned).collect())
        })?,
    })
}

/// A login name: not empty, no blanks, not taken for an option.
fn user(text: &str) -> Result<String, String> {
    if text.is_empty() || text.starts_with('-') || text.contains(char::is_whitespace) {
        Err("not a user name".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// How many hosts are reached at once.
pub fn fanout(settings: &Settings, args: &ConnectArgs) -> Result<usize, HvError> {
    let n = settings.count::<u16>("hv_fanout", args.fanout.as_deref(), 1..=MAX_FANOUT)?;
    Ok(usize::from(n))
}

/// How long a command may run on each host; `None`: no limit.
pub fn timeout(settings: &Settings, args: &ConnectArgs) -> Result<Option<Duration>, HvError> {
    let t = settings.seconds("hv_timeout", args.timeout.as_deref())?;
    Ok((!t.is_zero()).then_some(t))
}

/// The options of `exec`.
pub fn exec(
    common: &CommonArgs,
    settings: &Settings,
    args: &ExecArgs,
) -> Result<exec::Options, HvError> {
    Ok(exec::Options {
        run: run_options(
            common,
            settings,
            &args.targets,
            &args.connect,
            args.json.json,
            args.dry_run.dry_run,
        )?,
        command: args.command.clone(),
        gather: args.gather,
        outdir: args.outdir.clone(),
    })
}

/// The options of `copy`.
pub fn copy(
    common: &CommonArgs,
    settings: &Settings,
    args: &CopyArgs,
) -> Result<transfer::Options, HvError> {
    let (targets, connect) = (&args.targets, &args.connect);
    Ok(transfer::Options {
        run: run_options(
            common,
            settings,
            targets,
            connect,
            args.json.json,
            args.dry_run.dry_run,
        )?,
        transfer: Transfer::Copy {
            src: args.src.clone(),
            dest: args.dest.clone(),
        },
    })
}

/// The options of `fetch`.
pub fn fetch(
    common: &CommonArgs,
    settings: &Settings,
    args: &FetchArgs,
) -> Result<transfer::Options, HvError> {
    let (targets, connect) = (&args.targets, &args.connect);
    Ok(transfer::Options {
        run: run_options(
            common,
            settings,
            targets,
            connect,
            args.json.json,
            args.dry_run.dry_run,
        )?,
        transfer: Transfer::Fetch {
            remote: args.remote.clone(),
            dir: args.dir.clone(),
        },
    })
}

/// The options of `conf diff|apply`.
pub fn conf(
    common: &CommonArgs,
    settings: &Settings,
    args: &ConfArgs,
) -> Result<conf::Options, HvError> {
    let (targets, connect) = (&args.targets, &args.connect);
    let run = run_options(
        common,
        settings,
        targets,
        connect,
        args.json.json,
        args.dry_run.dry_run,
    )?;
    Ok(conf::Options {
        // `conf diff` only reads.
        run: Run {
            record: run.record && args.action == conf::Action::Apply,
            ..run
        },
        action: args.action,
        config_dir: common.config_dir.clone(),
        tree: settings.path("hv_conf_tree", None)?,
        root: args.root.clone().unwrap_or_default(),
        wait: args.wait.resolve(settings, "hv_wait")?,
    })
}

/// The options of `install`.
pub fn install(
    common: &CommonArgs,
    settings: &Settings,
    args: &InstallArgs,
) -> Result<install::Options, HvError> {
    let (targets, connect) = (&args.targets, &args.connect);
    Ok(install::Options {
        run: run_options(
            common,
            settings,
            targets,
            connect,
            args.json.json,
            args.dry_run.dry_run,
        )?,
        packages: args.packages.clone(),
        update: args.update,
    })
}

/// The options of `packages`.
pub fn packages(
    common: &CommonArgs,
    settings: &Settings,
    args: &PackagesArgs,
) -> Result<packages::Options, HvError> {
    let (targets, connect) = (&args.targets, &args.connect);
    Ok(packages::Options {
        run: Run {
            record: false,
            ..run_options(common, settings, targets, connect, args.json.json, false)?
        },
        baseline: args.baseline.as_deref().map(str::to_ascii_lowercase),
    })
}

/// The options of `create`; the MAC is derived later, under the lock.
pub fn create(settings: &Settings, args: &CreateArgs) -> Result<create::Options, HvError> {
    check_name(&args.name)?;
    let (ip, prefix) = parse_ip(&args.ip)?;
    Ok(create::Options {
        name: args.name.clone(),
        size: parse_size("--size", &args.size)?,
        ram_mib: parse_size("--ram", &args.ram)? >> 20,
        ip,
        prefix,
        plan: args.plan,
        backend: args.backend,
        vm_root: settings.with("hv_vm_root", None, plain_path)?,
        vm_dir: settings.path("hv_vm_dir", None)?,
        unit_dir: settings.with("hv_unit_dir", None, plain_path)?,
        state_dir: state_dir(settings)?,
        wait: args.wait.resolve(settings, "hv_wait")?,
        vg: settings.with("hv_vg", None, volume_group)?,
        release: settings.with("hv_release", None, release)?,
        mirror: settings.with("hv_mirror", None, mirror)?,
        gateway: settings.with("hv_gateway", None, |t| match t.trim() {
            "" => Ok(None),
            one => address(one).map(Some),
        })?,
        dns: settings.with("hv_dns", None, addresses)?,
        authorized_keys: keys(settings.optional_path("hv_authorized_keys", None)?)?,
        bridge: settings.with("hv_bridge", None, bridge)?,
    })
}

/// The options of `mac`.
pub fn mac(settings: &Settings, args: &MacArgs) -> Result<mac::Options, HvError> {
    if args.name.as_deref() == Some("") {
        return Err(pysk_common::Error::option("--name", "empty").into());
    }
    Ok(mac::Options {
        dirs: vec![
            settings.path("hv_vm_dir", None)?,
            settings.path("hv_unit_dir", None)?,
        ],
        name: args.name.clone(),
        json: args.json.json,
        state_dir: state_dir(settings)?,
        wait: args.wait.resolve(settings, "hv_wait")?,
    })
}

/// `text` is made of `allowed` bytes only, is not empty, is at most
/// `max` long and does not start with `-` (it would be read as an
/// option).
fn word(text: &str, max: usize, allowed: impl Fn(u8) -> bool) -> Result<String, String> {
    if text.is_empty() || text.len() > max {
        return Err(format!("expected 1 to {max} characters"));
    }
    if text.starts_with('-') {
        return Err("must not start with '-'".to_owned());
    }
    match text.bytes().find(|&b| !allowed(b)) {
        Some(b) => Err(format!("character {:?} not allowed", char::from(b))),
        None => Ok(text.to_owned()),
    }
}

/// An absolute path that can stand in a unit's command line and in
/// qemu's comma-separated options as it is: no blanks, commas, quotes,
/// `\`, `$` or `%`.
fn plain_path(text: &str) -> Result<PathBuf, String> {
    if !text.starts_with('/') {
        return Err("expected an absolute path".to_owned());
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || ",'\"\\$%;".contains(c);
    match text.chars().find(|&c| bad(c)) {
        Some(c) => Err(format!(
            "character {c:?} not allowed (the path goes into qemu's options)"
        )),
        None => Ok(PathBuf::from(text)),
    }
}

/// An LVM volume group name: letters, digits, `+_.-`, not `.` or `..`.
fn volume_group(text: &str) -> Result<String, String> {
    if text == "." || text == ".." {
        return Err("not a volume group name".to_owned());
    }
    word(text, 127, |b| {
        b.is_ascii_alphanumeric() || b"+_.-".contains(&b)
    })
}

/// A network interface name as Linux takes it (at most 15 bytes, not
/// `.` or `..`), of letters, digits and `_.-` (it goes into qemu's
/// comma-separated options and the unit's command line).
fn bridge(text: &str) -> Result<String, String> {
    if text == "." || text == ".." {
        return Err("not an interface name".to_owned());
    }
    word(text, 15, |b| {
        b.is_ascii_alphanumeric() || b"_.-".contains(&b)
    })
}

/// A Debian suite or codename: letters, digits and `_.-`.
fn release(text: &str) -> Result<String, String> {
    word(text, 64, |b| {
        b.is_ascii_alphanumeric() || b"_.-".contains(&b)
    })
}

/// A mirror URL: `scheme://…` with no blanks or control characters.
fn mirror(text: &str) -> Result<String, String> {
    let scheme = text.split_once("://").map(|(s, _)| s);
    let scheme_ok = scheme.is_some_and(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    });
    if !scheme_ok {
        return Err("expected a URL such as http://deb.debian.org/debian".to_owned());
    }
    word(text, 4096, |b| b.is_ascii_graphic())
}

/// One IP address.
fn address(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not one IP address"))
}

/// IP addresses separated by blanks or commas; none when empty.
fn addresses(text: &str) -> Result<Vec<IpAddr>, String> {
    text.split([' ', ',', '\t'])
        .filter(|w| !w.is_empty())
        .map(address)
        .collect()
}

/// What every subcommand that reaches hosts shares: hosts, ssh, fanout,
/// timeout, state, `--json`, `--dry-run`.
fn run_options(
    common: &CommonArgs,
    settings: &Settings,
    targets: &TargetArgs,
    connect: &ConnectArgs,
    json: bool,
    dry_run: bool,
) -> Result<Run, HvError> {
    Ok(Run {
        inventory: inventory(common),
        selection: selection(targets),
        state_dir: state_dir(settings)?,
        ssh: ssh(settings, connect)?,
        fanout: fanout(settings, connect)?,
        fanout_from: match connect.fanout {
            Some(_) => "--fanout",
            None => "hv_fanout",
        },
        timeout: timeout(settings, connect)?,
        json,
        dry_run,
        record: !dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    use clap::Parser;
    use pysk_common::exit::ToolError;

    use crate::cli::Cli;
    use crate::targets::Rerun;

    fn settings(text: &str) -> (tempfile::TempDir, CommonArgs, Settings) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("serverconfig/default");
        fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        fs::write(&file, text).expect("write");
        let path = dir.path().to_str().expect("utf-8").to_owned();
        let cli = Cli::try_parse_from([
            "pysk-hv",
            "--host",
            "h.example",
            "--config-dir",
            &path,
            "config",
        ])
        .expect("parses");
        let report = cli.common.reporter(crate::cli::NAME);
        let settings = cli.common.settings(SWITCHES, &report).expect("settings");
        (dir, cli.common, settings)
    }

    fn connect(fanout: &str, timeout: &str, connect_timeout: &str, user: &str) -> ConnectArgs {
        ConnectArgs {
            fanout: Some(fanout.to_owned()),
            timeout: Some(timeout.to_owned()),
            connect_timeout: Some(connect_timeout.to_owned()),
            user: Some(user.to_owned()),
            accept_new: true,
        }
    }

    #[test]
    fn with_no_configuration_every_default_applies() {
        let (dir, common, s) = settings("");
        let none = ConnectArgs::default();
        assert_eq!(
            ssh(&s, &none).expect("ssh"),
            Ssh {
                connect_timeout: Duration::from_secs(10),
                accept_new: false,
                user: "root".to_owned(),
                options: Vec::new(),
            }
        );
        assert_eq!(fanout(&s, &none).expect("fanout"), 32);
        assert_eq!(timeout(&s, &none).expect("timeout"), None);
        assert_eq!(state_dir(&s).expect("state"), Path::new("/var/lib/pysk/hv"));
        assert_eq!(inventory(&common), dir.path().join("hosts"));
        for spec in SWITCHES {
            let value = s.string(spec.key, None).expect("a listed key");
            assert_eq!(value, spec.default);
        }
    }

    #[test]
    fn switches_apply_and_options_beat_them() {
        let (_dir, _common, s) = settings(
            "hv_fanout=4\nhv_timeout=30\nhv_connect_timeout=2.5\nhv_user=admin\n\
             hv_ssh_options=\"-F /etc/pysk/ssh_config  -o ProxyJump=gw\"\n\
             hv_state_dir=/srv/hv\n",
        );
        let none = ConnectArgs::default();
        let from_files = ssh(&s, &none).expect("ssh");
        assert_eq!(from_files.connect_timeout, Duration::from_millis(2500));
        assert_eq!(from_files.user, "admin");
        assert_eq!(
            from_files.options,
            ["-F", "/etc/pysk/ssh_config", "-o", "ProxyJump=gw"]
        );
        assert_eq!(fanout(&s, &none).expect("fanout"), 4);
        assert_eq!(
            timeout(&s, &none).expect("t"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(state_dir(&s).expect("state"), Path::new("/srv/hv"));
        let cli = connect("64", "0", "1", "ops");
        let from_cli = ssh(&s, &cli).expect("ssh");
        assert_eq!(from_cli.connect_timeout, Duration::from_secs(1));
        assert_eq!(from_cli.user, "ops");
        assert!(from_cli.accept_new);
        assert_eq!(fanout(&s, &cli).expect("fanout"), 64);
        assert_eq!(timeout(&s, &cli).expect("t"), None);
    }

    #[test]
    fn bad_values_are_named_where_they_came_from() {
        let (dir, _common, s) = settings("hv_fanout=0\nhv_user=\"a b\"\nhv_connect_timeout=0\n");
        let file = dir.path().join("serverconfig/default");
        let none = ConnectArgs::default();
        let err = fanout(&s, &none).expect_err("zero");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:1: hv_fanout: \"0\": expected a whole number from 1 to 1024",
                file.display()
            )
        );
        assert_eq!(err.exit_code(), 78);
        let err = ssh(&s, &connect("1", "0", "5", "-oProxyCommand=x")).expect_err("user");
        assert_eq!(
            err.to_string(),
            "--user: \"-oProxyCommand=x\": not a user name"
        );
        assert_eq!(err.exit_code(), 2);
        let err = ssh(
            &s,
            &ConnectArgs {
                user: Some("root".into()),
                ..none.clone()
            },
        )
        .expect_err("connect timeout 0");
        assert!(
            err.to_string()
                .starts_with(&format!("{}:3: hv_connect_timeout:", file.display())),
            "{err}"
        );
        let err = timeout(&s, &connect("1", "soon", "5", "root")).expect_err("timeout");
        assert_eq!(
            err.to_string(),
            "--timeout: \"soon\": expected seconds from 0 to 86400"
        );
    }

    #[test]
    fn exec_resolves_from_the_command_line_and_the_switches() {
        let (dir, common, s) = settings("hv_state_dir=/srv/hv\nhv_timeout=90\n");
        let cli = Cli::try_parse_from([
            "pysk-hv", "exec", "-w", "web[1-2]", "-g", "db", "--gather", "-f", "3", "--", "uptime",
            "-p",
        ])
        .expect("parses");
        let crate::cli::Command::Exec(args) = cli.command else {
            panic!("exec");
        };
        let options = exec(&common, &s, &args).expect("options");
        let run = &options.run;
        assert_eq!(run.inventory, dir.path().join("hosts"));
        assert_eq!(run.state_dir, Path::new("/srv/hv"));
        assert_eq!(run.selection.nodes, ["web[1-2]"]);
        assert_eq!(run.selection.groups, ["db"]);
        assert_eq!(run.fanout, 3);
        assert_eq!(run.timeout, Some(Duration::from_secs(90)));
        assert_eq!(run.ssh.user, "root");
        assert_eq!(options.command, ["uptime", "-p"]);
        assert!(options.gather && !run.json && !run.dry_run);
        assert_eq!(options.outdir, None);
    }

    #[test]
    fn the_selection_is_the_command_lines() {
        let args = TargetArgs {
            nodes: vec!["web[1-2]".into()],
            groups: vec![" db".into()],
            exclude: vec!["web2".into()],
            rerun: Some(Rerun::Unreachable),
        };
        assert_eq!(
            selection(&args),
            Selection {
                nodes: vec!["web[1-2]".into()],
                groups: vec!["db".into()],
                exclude: vec!["web2".into()],
                rerun: Some(Rerun::Unreachable),
            }
        );
    }

    #[test]
    fn create_switch_values_are_checked() {
        assert_eq!(bridge("br0"), Ok("br0".to_owned()));
        for bad in ["", "br0 x", "br,0", "-br", "..", "abcdefghijklmnop"] {
            assert!(bridge(bad).is_err(), "{bad:?}");
        }
        assert_eq!(volume_group("vg_0+a.b-c"), Ok("vg_0+a.b-c".to_owned()));
        for bad in ["", "-vg", ".", "vg/x", "vg x"] {
            assert!(volume_group(bad).is_err(), "{bad:?}");
        }
        assert!(release("bookworm-backports").is_ok());
        assert!(release("--x").is_err());
        assert!(mirror("http://deb.debian.org/debian").is_ok());
        assert!(mirror("file:///srv/mirror").is_ok());
        for bad in ["deb.debian.org", "-http://x", "http://a b", "://x"] {
            assert!(mirror(bad).is_err(), "{bad:?}");
        }
        let ips = addresses("192.0.2.53, 2001:db8::1\t192.0.2.54").expect("list");
        assert_eq!(ips.len(), 3);
        assert_eq!(addresses(""), Ok(Vec::new()));
        assert!(addresses("192.0.2.53 x").is_err());
        assert!(plain_path("/srv/vm").is_ok());
        for bad in ["srv/vm", "/srv/v m", "/srv/vm,x", "/srv/$x", "/srv/%i"] {
            assert!(plain_path(bad).is_err(), "{bad:?}");
        }
    }
}
