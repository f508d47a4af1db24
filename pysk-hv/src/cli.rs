//! The command line of `pysk-hv`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use pysk_common::cli::{CommonArgs, DryRunArgs, JsonArgs, WaitArgs};
use pysk_common::exit;
use pysk_common::settings;

use crate::conf::Action;
use crate::create::Backend;
use crate::settings::SWITCHES;
use crate::targets::Rerun;

/// The tool's name, written once: clap, the reporter and `main` use it.
pub const NAME: &str = env!("CARGO_PKG_NAME");

/// Every exit code the tool can return, and what it means here.
const EXIT_CODES: &[(u8, &str)] = &[
    (exit::OK, "ok: every host ok"),
    (
        exit::PARTIAL,
        "a host that was not ok (each host's class in the summary)",
    ),
    (
        exit::USAGE,
        "usage: a bad option, no hosts named, or a copy SRC that is no file",
    ),
    (
        exit::DATAERR,
        "a name or group the inventory lacks (-w, -x, -g), a last-run.json that is not one, or a create NAME that exists",
    ),
    (
        exit::NOINPUT,
        "no inventory, or no last run to --rerun, or a file of hv_vm_dir gone while read",
    ),
    (
        exit::UNAVAILABLE,
        "ssh cannot be started (not installed, or not executable)",
    ),
    (exit::SOFTWARE, "internal error (please report it)"),
    (
        exit::CANTCREAT,
        "the state directory cannot be written, or a step of create failed (those before it undone)",
    ),
    (
        exit::IOERR,
        "an I/O error (writing stdout failed, a disk error)",
    ),
    (
        exit::TEMPFAIL,
        "conf apply, create, mac: another run holds the lock (see --wait)",
    ),
    (
        exit::NOPERM,
        "a file that may not be read or written, or create run by another user than root",
    ),
    (
        exit::CONFIG,
        "bad configuration: a switch, a malformed inventory line (a bad port=), or an unknown {{key}} of the conf tree",
    ),
];

/// pysk-hv: commands across the fleet over OpenSSH, each host's result
/// told apart
#[derive(Debug, Parser)]
#[command(version, after_help = settings::help(SWITCHES, &exit::help(EXIT_CODES)))]
pub struct Cli {
    /// The options every pysk tool shares.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command on every host picked, each host's result told apart
    #[command(after_help = "\
Examples:
  pysk-hv exec -w 'web[1-5],db1' -- uptime
  pysk-hv exec -g web --timeout 60 --gather -- 'apt-get -q update && apt-get -s upgrade | grep ^Inst'
  pysk-hv exec --rerun failed -- systemctl restart nginx

The command is shell text run by sh -c on each host (quote it once for
the local shell; pipes and ; work on the host). Output comes as
'host: line' while it runs (the host's stderr on stderr); --gather prints
each distinct output once under its hosts when all are done; --outdir
writes DIR/<host>.out and DIR/<host>.err instead. stdin, when it is not a
terminal, is read to its end first and goes to every host whole (a script
whose stdin stays open gives exec < /dev/null).

Each host ends as one of: ok, exit N, killed by a signal, unreachable,
connection lost (after login: the command may have run), host key
(changed or unknown: --accept-new records unknown keys on first
contact), auth refused, timed out. With --timeout the command runs under
timeout -k 5 on the host, so it ends there too; the local ssh is killed
10 s later, and such a host is said to be 'timed out, may still be
running'. Every host that was not ok is named on stderr, then the counts
and the slowest hosts; the classes are kept in <hv_state_dir>/last-run.json
for --rerun. Exit 0 only when every host was ok, else 1.")]
    Exec(Box<ExecArgs>),
    /// Copy a local file to every host picked, each host's result told
    /// apart
    #[command(after_help = "\
Examples:
  pysk-hv copy -w 'web[1-5]' nginx.conf /etc/nginx/nginx.conf
  pysk-hv copy -g web --timeout 60 motd /etc/

SRC is a regular file (a directory is refused). On each host it is
written to a temporary file beside DEST with the permission bits of SRC
and renamed over DEST, so DEST is the old file or the new one, never a
part; a DEST that is a directory on the host gets SRC's name inside it.
Each host ends classified as for exec; exit 0 only when every host was
ok, else 1.")]
    Copy(Box<CopyArgs>),
    /// Fetch a file from every host picked into DIR/<host>/, each host's
    /// result told apart
    #[command(after_help = "\
Examples:
  pysk-hv fetch -g web /etc/nginx/nginx.conf /tmp/nginx
  pysk-hv fetch --rerun failed /var/log/syslog /tmp/logs

Each host's REMOTE is written to DIR/<host>/<name of REMOTE>, atomically
and owner-only, when the host ends ok; a file the host lacks or cannot
read is that host's failure (exit 1, with cat's message on stderr). Each
host ends classified as for exec; exit 0 only when every host was ok,
else 1.")]
    Fetch(Box<FetchArgs>),
    /// Install packages on every host picked with its own manager (apt,
    /// pacman or dnf), each host's result told apart
    #[command(after_help = "\
Examples:
  pysk-hv install -g web nginx
  pysk-hv install --update --timeout 900 -g web nginx
  pysk-hv install --dry-run -w 'db[1-2]' postgresql-15

Per host and package: 'installed (VERSION)', 'already present
(VERSION)', 'unknown package' (the manager knows no such name: apt-cache
show, pacman -Si/-Sg, dnf info; the other names are still installed) or
'not installed' with the manager's own output, on stderr (-q hides all
but failures). Only the missing packages are given to the manager,
non-interactively (apt-get -y with the old configuration files kept,
pacman --noconfirm --needed, dnf -y). --update refreshes the index first
when a package is missing: apt-get update, dnf makecache, and for pacman
-Sy with the install done as -Su, which upgrades the whole system (Arch
supports no partial upgrade). --timeout bounds the package manager too:
a run cut short can leave dpkg or rpm half done; give it room. A name
that is not a package name is refused before any host (exit 65).
--dry-run asks each host and simulates (apt-get -s, pacman --print, dnf
--assumeno), refreshing nothing, and prints 'would be installed' on
stdout. Each host ends classified as for exec; exit 0 only when every
host was ok, else 1.")]
    Install(Box<InstallArgs>),
    /// Compare the installed packages of the hosts picked: the packages
    /// whose versions differ, hosts with identical sets grouped
    #[command(after_help = "\
Examples:
  pysk-hv packages -g web
  pysk-hv packages -w 'web[1-5]' --baseline web1

One column per group of hosts with identical package sets (dpkg's ii
packages, pacman -Q, rpm -qa), one row per package whose version differs
between them or that some lack ('-'). With --baseline HOST, HOST's
column comes first and a version the same as HOST's is shown as '='.
HOST must be in the inventory and among the hosts picked (exit 2 before
any host is contacted); if it ends not ok, the matrix is printed without
a baseline. Hosts that were not ok are left out of the matrix and named
on stderr; exit 0 only when every host was ok, else 1. No --dry-run:
listing changes nothing.")]
    Packages(Box<PackagesArgs>),
    /// Print a locally administered unicast MAC that no virtual server's
    /// definition uses yet
    #[command(after_help = "\
Examples:
  pysk-hv mac
  pysk-hv mac --name web7.example.org

Random, or with --name the first 6 bytes of the name's SHA-256 (the same
name, the same MAC), made locally administered and unicast. Never one
written as mac=, macaddr= or <mac address='...'/> (in any case) in a
regular file below hv_vm_dir and hv_unit_dir; a name whose MAC is in use
gives the MAC of NAME#1, NAME#2... instead, said on stderr. A create
holding the lock is waited for (--wait). --json adds the name it came
from and the MACs in use.")]
    Mac(MacArgs),
    /// Show (diff) or write (apply) the configuration tree on every host
    /// picked, rendered with each host's switches
    #[command(after_help = "\
Examples:
  pysk-hv conf diff -g web
  pysk-hv conf apply -w 'web[1-5]' --wait 60
  pysk-hv conf apply -w web1 --root '/tmp/try/{host}'

The tree is hv_conf_tree: <tree>/etc/x goes to /etc/x on the host. A
file ending in .in has each {{key}} replaced by the host's switch key
(serverconfig/default, overridden by serverconfig/<host>) and loses the
suffix; an unknown key stops the run, naming file and line, before any
host is contacted. Links stay links (a link named x.in has its target's
placeholders filled). Paths in serverconfig/exclude/<host> are left out
for that host; a FIFO, socket or device in the tree, or a name that is
not UTF-8, stops the run. diff (and apply --dry-run) prints a unified diff
of every path that would change and 'host: N changed' or 'host:
unchanged'; a secret file shows only 'host:PATH: contents differ (mode
0600, not shown)': one not world-readable in the tree, or a .in file
filling a switch whose key has a word password, passwd, pass, secret,
token, key, apikey, credentials or private (words split at _ - .). apply
takes the tool's lock (--wait; diff waits for a run that holds it),
writes only the changed paths, each to a temporary file beside it with
the tree file's mode and the owner and group of the file it replaces,
synced and renamed over it (a missing directory gets its tree mode,
0755 above the tree), and says
'host: N changed' on stderr (-q hides it). --root puts every path under
DIR on the host ({host} is the host's name). Each host ends classified as
for exec; exit 0 only when every host was ok, else 1.")]
    Conf(Box<ConfArgs>),
    /// Make a virtual server: disk, mmdebstrap, its files, the systemd
    /// unit that starts qemu
    #[command(after_help = "\
Examples:
  pysk-hv create web7 --size 10G --ram 2G --ip 192.0.2.17/24 --plan
  pysk-hv create web7 --size 10G --ram 2048 --ip 192.0.2.17/24 --backend lvm

The steps: the disk (dir: hv_vm_root/NAME; image: hv_vm_root/NAME.img,
sparse, ext4, loop-mounted on hv_vm_root/NAME; lvm: a volume of hv_vg,
ext4, mounted there), mmdebstrap --variant=minbase with systemd-sysv,
udev, linux-image-amd64, openssh-server and iproute2 of hv_release from
hv_mirror (dir: 9p added to the initramfs; a root without
etc/os-release fails), then etc/hostname, the systemd-networkd file
(--ip, hv_gateway, hv_dns) and its enabling links, resolv.conf, hosts,
fstab, root/.ssh/authorized_keys (hv_authorized_keys), a first-boot
script with its unit (new ssh host keys); image and lvm: the kernel and
initrd copied to hv_vm_root/NAME.vmlinuz and NAME.initrd (again after a
kernel upgrade inside), the root unmounted; last
hv_unit_dir/pysk-vm-NAME.service running qemu with -kernel, -initrd, the
disk, --ram and the MAC derived from NAME (as mac --name gives it),
enabled (its link in multi-user.target.wants, daemon-reload when systemd
runs). --plan prints every step and every file it would write, exactly,
and changes nothing. Applying says each step on stderr; a step that
fails undoes the ones before it, in reverse, each said (exit 73),
unmounting first and never removing across a mount. The tool's lock
(--wait) is held from the checks to the last step. A NAME whose disk or
unit exists is refused (65); applying needs root (77). Sizes: 512M, 10G
(a bare number is MiB).")]
    Create(Box<CreateArgs>),
    /// Print the effective switches (defaults included) in shell syntax
    #[command(after_help = "\
Example:
  pysk-hv --host hv1.example.org config > /tmp/switches.sh")]
    Config,
}

/// Which hosts of the inventory (`<config-dir>/hosts`) a subcommand
/// reaches.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// Hosts by name or node set: web[1-5],db1 (repeatable; every name
    /// must be in the inventory)
    #[arg(short = 'w', value_name = "NODESET")]
    pub nodes: Vec<String>,
    /// The hosts of a group, from the inventory's groups=a,b key
    /// (repeatable, or a comma list)
    #[arg(
        short = 'g',
        long = "group",
        value_name = "GROUP",
        value_delimiter = ','
    )]
    pub groups: Vec<String>,
    /// Leave these hosts out (a node set, repeatable)
    #[arg(short = 'x', long = "exclude", value_name = "NODESET")]
    pub exclude: Vec<String>,
    /// The hosts of the last run that were not ok (failed), or that were
    /// not reached, where the command never ran (unreachable: unreachable,
    /// host key, auth; not a connection lost after login)
    #[arg(long, value_enum, value_name = "WHICH")]
    pub rerun: Option<Rerun>,
}

/// How each host is reached.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// How many hosts at once [switch: hv_fanout]
    #[arg(short = 'f', long, value_name = "N")]
    pub fanout: Option<String>,
    /// Seconds each host's connection may take [switch: hv_connect_timeout]
    #[arg(long, value_name = "SECONDS")]
    pub connect_timeout: Option<String>,
    /// Seconds the command may run on each host before it is ended there;
    /// 0: no limit [switch: hv_timeout]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,
    /// The account to log in as [switch: hv_user]
    #[arg(short = 'l', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Accept and record the key of a host whose key is not known yet
    /// (first contact); a changed key is refused all the same
    #[arg(long)]
    pub accept_new: bool,
}

/// The options of `exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// The hosts.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// How they are reached.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print each distinct output once, under the hosts that gave it (as
    /// clush -b does)
    #[arg(long, conflicts_with_all = ["json", "outdir"])]
    pub gather: bool,
    /// Write each host's stdout and stderr to files in DIR instead
    #[arg(long, value_name = "DIR", conflicts_with = "json")]
    pub outdir: Option<PathBuf>,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// The command: shell text, run by sh -c on each host (after the
    /// options, or after --)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

/// The options of `copy`.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// The hosts.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// How they are reached.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// The local file
    #[arg(value_name = "SRC")]
    pub src: PathBuf,
    /// Where it goes on each host (a file, or a directory to put it in)
    #[arg(value_name = "DEST")]
    pub dest: String,
}

/// The options of `fetch`.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// The hosts.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// How they are reached.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// The file on each host
    #[arg(value_name = "REMOTE")]
    pub remote: String,
    /// The local directory each host's copy goes under, in DIR/<host>/
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// The options of `conf`.
#[derive(Debug, Clone, Args)]
pub struct ConfArgs {
    /// diff: show what would change; apply: write it
    #[arg(value_enum, value_name = "ACTION")]
    pub action: Action,
    /// The hosts.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// How they are reached.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Put every path under DIR on the host; {host} in DIR is the host's
    /// name
    #[arg(long, value_name = "DIR")]
    pub root: Option<String>,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
}

/// The options of `install`.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// The hosts.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// How they are reached.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// Refresh the package index first (apt-get update, pacman -Sy with
    /// -Su for the install, dnf makecache); a dry run refreshes nothing
    #[arg(long)]
    pub update: bool,
    /// The packages, as the hosts' managers name them
    #[arg(required = true, value_name = "PKG")]
    pub packages: Vec<String>,
}

/// The options of `packages`.
#[derive(Debug, Clone, Args)]
pub struct PackagesArgs {
    /// The hosts.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// How they are reached.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Put this host's column first and mark the versions the same as
    /// its own
    #[arg(long, value_name = "HOST")]
    pub baseline: Option<String>,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The virtual server's name (its hostname)
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The disk's size: 10G, 512M (image, lvm; dir takes what it needs)
    #[arg(long, value_name = "SIZE")]
    pub size: String,
    /// The memory: 2G, 512M, or MiB
    #[arg(long, value_name = "SIZE")]
    pub ram: String,
    /// The address, A.B.C.D/N (/24 if N is left out)
    #[arg(long, value_name = "ADDR")]
    pub ip: String,
    /// Print every step and every file, change nothing
    #[arg(long)]
    pub plan: bool,
    /// Where the root file system lives
    #[arg(long, value_enum, default_value = "dir")]
    pub backend: Backend,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `mac`.
#[derive(Debug, Clone, Args)]
pub struct MacArgs {
    /// Derive the MAC from this name (the virtual server's), not at random
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `exec`'s options on a command line of their own.
    #[derive(Debug, Parser)]
    struct Exec {
        #[command(flatten)]
        args: ExecArgs,
    }

    fn exec(args: &[&str]) -> Result<ExecArgs, clap::Error> {
        Exec::try_parse_from(std::iter::once("exec").chain(args.iter().copied())).map(|e| e.args)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        Exec::command().debug_assert();
    }

    #[test]
    fn help_lists_every_exit_code_and_switch() {
        let help = Cli::command().render_long_help().to_string();
        for code in ["1", "2", "65", "66", "69", "78"] {
            assert!(help.contains(&format!("  {code:>2}  ")), "{code}: {help}");
        }
        for spec in SWITCHES {
            assert!(help.contains(spec.key), "{}", spec.key);
        }
    }

    #[test]
    fn exec_takes_every_option_and_the_command_after_them() {
        let args = exec(&[
            "-w",
            "web[1-3]",
            "-w",
            "db1",
            "-g",
            "web,db",
            "-x",
            "web2",
            "--rerun",
            "failed",
            "-f",
            "8",
            "--connect-timeout",
            "5",
            "--timeout",
            "60",
            "-l",
            "admin",
            "--accept-new",
            "--outdir",
            "/tmp/out",
            "--dry-run",
            "--",
            "ls",
            "-l",
            "|",
            "wc",
        ])
        .expect("parses");
        assert_eq!(args.targets.nodes, ["web[1-3]", "db1"]);
        assert_eq!(args.targets.groups, ["web", "db"]);
        assert_eq!(args.targets.exclude, ["web2"]);
        assert_eq!(args.targets.rerun, Some(Rerun::Failed));
        assert_eq!(args.connect.fanout.as_deref(), Some("8"));
        assert_eq!(args.connect.connect_timeout.as_deref(), Some("5"));
        assert_eq!(args.connect.timeout.as_deref(), Some("60"));
        assert_eq!(args.connect.user.as_deref(), Some("admin"));
        assert!(args.connect.accept_new && args.dry_run.dry_run);
        assert_eq!(args.outdir, Some(PathBuf::from("/tmp/out")));
        assert_eq!(args.command, ["ls", "-l", "|", "wc"]);
        let gathered = exec(&["-w", "a", "--gather", "true"]).expect("parses");
        assert!(gathered.gather && !gathered.json.json);
        assert!(
            exec(&["-w", "a", "--json", "true"])
                .expect("parses")
                .json
                .json
        );
    }

    #[test]
    fn gather_json_and_outdir_exclude_each_other() {
        for (a, b) in [
            (&["--gather"][..], &["--json"][..]),
            (&["--gather"], &["--outdir", "d"]),
            (&["--outdir", "d"], &["--json"]),
        ] {
            let argv: Vec<&str> = [&["pysk-hv", "exec", "-w", "a"][..], a, b, &["true"]].concat();
            let err = Cli::try_parse_from(&argv)
                .map(|_| ())
                .expect_err("conflict");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{argv:?}"
            );
            assert_eq!(err.exit_code(), 2);
            let text = err.to_string();
            assert!(text.contains(a[0]) && text.contains(b[0]), "{text}");
        }
    }

    #[test]
    fn copy_and_fetch_take_the_targets_and_two_paths() {
        let cli = Cli::try_parse_from(["pysk-hv", "copy", "-w", "a", "--timeout", "9", "f", "/d"])
            .expect("parses");
        let Command::Copy(args) = cli.command else {
            panic!("not copy");
        };
        assert_eq!(args.targets.nodes, ["a"]);
        assert_eq!(args.connect.timeout.as_deref(), Some("9"));
        assert_eq!((args.src, args.dest), (PathBuf::from("f"), "/d".to_owned()));
        let cli = Cli::try_parse_from(["pysk-hv", "fetch", "-g", "web", "--json", "/r", "out"])
            .expect("parses");
        let Command::Fetch(args) = cli.command else {
            panic!("not fetch");
        };
        assert!(args.json.json);
        assert_eq!(
            (args.remote, args.dir),
            ("/r".to_owned(), PathBuf::from("out"))
        );
        assert!(Cli::try_parse_from(["pysk-hv", "copy", "-w", "a", "f"]).is_err());
    }

    #[test]
    fn install_takes_packages_and_packages_a_baseline() {
        let cli = Cli::try_parse_from(["pysk-hv", "install", "-g", "web", "--dry-run", "a", "b"])
            .expect("parses");
        let Command::Install(args) = cli.command else {
            panic!("not install");
        };
        assert_eq!(args.packages, ["a", "b"]);
        assert!(args.dry_run.dry_run && !args.update);
        assert!(Cli::try_parse_from(["pysk-hv", "install", "-w", "a"]).is_err());
        let cli = Cli::try_parse_from(["pysk-hv", "install", "-w", "a", "--update", "p"])
            .expect("parses");
        let Command::Install(args) = cli.command else {
            panic!("not install");
        };
        assert!(args.update && !args.dry_run.dry_run);
        let dry = ["pysk-hv", "packages", "-w", "a", "--dry-run"];
        assert!(Cli::try_parse_from(dry).is_err(), "listing changes nothing");
        let cli = Cli::try_parse_from(["pysk-hv", "packages", "-w", "a,b", "--baseline", "b"])
            .expect("parses");
        let Command::Packages(args) = cli.command else {
            panic!("not packages");
        };
        assert_eq!(args.baseline.as_deref(), Some("b"));
    }

    #[test]
    fn exec_without_dashes_takes_the_command_from_its_first_word() {
        let args = exec(&["-w", "a", "uptime", "-p"]).expect("parses");
        assert_eq!(args.command, ["uptime", "-p"]);
        assert_eq!(
            exec(&["-w", "a", "--rerun", "unreachable", "true"])
                .expect("parses")
                .targets
                .rerun,
            Some(Rerun::Unreachable)
        );
        assert!(exec(&["-w", "a"]).is_err(), "no command");
        assert!(exec(&["--rerun", "ok", "true"]).is_err(), "bad rerun");
    }

    #[test]
    fn every_option_a_switch_beats_names_its_switch() {
        let command = Exec::command();
        for spec in SWITCHES {
            let Some(option) = spec.option.and_then(|o| o.strip_prefix("--")) else {
                continue;
            };
            if option == "wait" {
                // exec takes no lock; the --wait of conf apply gets its
                // help from `pysk_common::cli::parse`.
                continue;
            }
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(option))
                .unwrap_or_else(|| panic!("--{option}"));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(
                help.ends_with(&format!("[switch: {}]", spec.key)),
                "--{option}: {help}"
            );
        }
    }
}
