//! The options every tool shares, and the `config` subcommand.
//!
//! Each tool flattens [`CommonArgs`] into its clap parser, so `--config-dir`,
//! `--host`, `-q` and `-v` are spelled the same everywhere; subcommands that
//! take a lock flatten [`WaitArgs`] for `--wait`, subcommands that change
//! the system [`DryRunArgs`], and those that report a summary [`JsonArgs`].

use std::ffi::{CStr, CString};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser};

use crate::Error;
use crate::error::Origin;
use crate::hostname::is_host_name;
use crate::report::{Level, Reporter};
use crate::settings::{Settings, Spec};
use crate::switches::Switches;

/// Options shared by every pysk tool.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Directory holding serverconfig/ and hosts
    #[arg(
        long,
        global = true,
        env = "PYSK_CONFIG_DIR",
        default_value = "/etc/pysk",
        value_name = "DIR"
    )]
    pub config_dir: PathBuf,

    /// The server whose switches apply [default: this machine's FQDN]
    #[arg(long, global = true, value_name = "NAME")]
    pub host: Option<String>,

    /// Print nothing on success; only trouble goes to stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say what is being done (twice: details too)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// `--wait` for subcommands that take a lock.
#[derive(Debug, Clone, Default, Args)]
pub struct WaitArgs {
    /// When another run holds the lock, wait up to SECONDS for it before
    /// exiting 75 [default: the tool's *_wait switch]
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<String>,
}

impl WaitArgs {
    /// The longest time to wait for the lock: `--wait`, else the tool's
    /// switch `key` (such as `logs_wait`), else its default.
    pub fn resolve(&self, settings: &Settings, key: &str) -> Result<Duration, Error> {
        settings.seconds(key, self.wait.as_deref())
    }
}

/// `--dry-run` for subcommands that change the system.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct DryRunArgs {
    /// Print the plan or the unified diff of what would change; change
    /// nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `--json` for subcommands that report a summary.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct JsonArgs {
    /// Print the summary as one JSON document ("version": 1) on stdout
    /// instead of lines on stderr
    #[arg(long)]
    pub json: bool,
}

impl CommonArgs {
    /// The output level `-q` and `-v` ask for.
    pub fn level(&self) -> Level {
        match (self.quiet, self.verbose) {
            (true, _) => Level::Quiet,
            (false, 0) => Level::Normal,
            (false, 1) => Level::Verbose,
            (false, _) => Level::Debug,
        }
    }

    /// A reporter for `tool` at the level asked for.
    pub fn reporter(&self, tool: &'static str) -> Reporter {
        Reporter::new(tool, self.level())
    }

    /// The host whose switches apply: `--host`, else this machine's FQDN.
    /// It names files, so it must be a valid host name.
    pub fn host(&self) -> Result<String, Error> {
        let (name, origin) = match &self.host {
            Some(h) => (h.to_ascii_lowercase(), Origin::Option("--host".into())),
            None => (local_fqdn(), Origin::Default),
        };
        if is_host_name(&name) {
            Ok(name)
        } else {
            Err(Error::Setting {
                key: "host".into(),
                origin,
                reason: format!(
                    "{name:?} is not a valid host name (letters, digits, hyphens, dots)"
                ),
            })
        }
    }

    /// The settings of a tool whose switch list is `specs`, for
    /// [`CommonArgs::host`]. Switches that look like the tool's but are
    /// none of its keys are reported as warnings on `report`.
    pub fn settings(&self, specs: &'static [Spec], report: &Reporter) -> Result<Settings, Error> {
        let switches = Switches::load(&self.config_dir, &self.host()?)?;
        let settings = Settings::new(specs, switches);
        for warning in settings.unknown() {
            report.warn(warning);
        }
        Ok(settings)
    }

    /// The `config` subcommand: writes the effective `settings` for the
    /// host in shell syntax, the tool's own keys included with their
    /// defaults.
    pub fn print_config(&self, settings: &Settings, out: &mut dyn Write) -> Result<(), Error> {
        let text = settings.render(&self.host()?);
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(Error::Stdout)
    }
}

/// Parses the command line of a tool whose switch list is `specs` (exiting
/// 2 with clap's message on a usage error, 0 after `--help`), with the help
/// of every `--wait` stating the tool's default from its `*_wait` switch.
pub fn parse<C: Parser>(specs: &[Spec]) -> C {
    let mut command = C::command();
    if let Some(spec) = specs.iter().find(|s| s.key.ends_with("_wait")) {
        command = with_wait_default(command, spec);
    }
    let mut matches = command.get_matches();
    C::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}

/// `command` with the help of its `--wait`, and its subcommands', naming
/// the default of the switch `spec`.
fn with_wait_default(command: clap::Command, spec: &Spec) -> clap::Command {
    let help = format!(
        "When another run holds the lock, wait up to SECONDS for it before exiting 75 \
         [default: {} s, switch {}]",
        spec.default, spec.key
    );
    let command = if command.get_arguments().any(|a| a.get_id() == "wait") {
        command.mut_arg("wait", |a| a.help(help))
    } else {
        command
    };
    command.mut_subcommands(|sub| with_wait_default(sub, spec))
}

/// This machine's fully qualified name, as `hostname -f` finds it: the
/// canonical name of `gethostname()`, or the plain host name when the
/// resolver knows no better.
pub fn local_fqdn() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let name = CStr::from_bytes_until_nul(&buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    canonical_name(&name).unwrap_or(name)
}

fn canonical_name(name: &str) -> Option<String> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: zeroed addrinfo is a valid "no hints" value; we set flags only.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    let mut result: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string, hints and out pointer; freed below.
    let rc = unsafe { libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: result is a valid list from getaddrinfo; ai_canonname is
    // either null or a NUL-terminated string owned by the list.
    let canon = unsafe {
        let p = (*result).ai_canonname;
        let s = (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned());
        libc::freeaddrinfo(result);
        s
    };
    canon.filter(|c| c.contains('.') || !name.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        wait: WaitArgs,
    }

    #[test]
    fn shared_options_parse_the_same_everywhere() {
        let cli = Cli::try_parse_from([
            "pysk-test",
            "--config-dir",
            "/tmp/cfg",
            "--host",
            "Mikuru.igowo.de",
            "-vv",
            "--wait",
            "30",
        ])
        .expect("parses");
        assert_eq!(cli.common.config_dir, PathBuf::from("/tmp/cfg"));
        assert_eq!(cli.common.host().expect("host"), "mikuru.igowo.de");
        assert_eq!(cli.common.level(), Level::Debug);
        const SPECS: &[Spec] = &[Spec::new("t_wait", "0", "lock wait")];
        let settings = Settings::new(SPECS, Switches::default());
        assert_eq!(
            cli.wait.resolve(&settings, "t_wait").expect("wait"),
            Duration::from_secs(30)
        );
        let quiet = Cli::try_parse_from(["pysk-test", "-q"]).expect("parses");
        assert_eq!(quiet.common.level(), Level::Quiet);
        assert!(Cli::try_parse_from(["pysk-test", "-q", "-v"]).is_err());
    }

    #[test]
    fn host_that_could_escape_the_config_dir_is_refused() {
        for bad in ["../../etc/passwd", "a/b", "", "-x", "..", "foo_bar"] {
            let arg = format!("--host={bad}");
            let cli = Cli::try_parse_from(["pysk-test", arg.as_str()]).expect("parses");
            let err = cli.common.host().expect_err(bad);
            assert!(err.to_string().starts_with("--host: "), "{err}");
        }
        let cli = Cli::try_parse_from(["pysk-test"]).expect("parses");
        assert!(!cli.common.host().expect("local name").is_empty());
    }

    #[test]
    fn wait_help_states_the_tools_default() {
        #[derive(Parser)]
        struct Tool {
            #[command(subcommand)]
            command: Sub,
        }
        #[derive(clap::Subcommand)]
        enum Sub {
            Sync(WaitArgs),
        }
        const SPECS: &[Spec] = &[Spec::new("t_wait", "15", "lock wait")];
        let help = with_wait_default(<Tool as clap::CommandFactory>::command(), &SPECS[0])
            .find_subcommand_mut("sync")
            .expect("sync")
            .render_help()
            .to_string();
        assert!(help.contains("[default: 15 s, switch t_wait]"), "{help}");
    }

    #[test]
    fn print_config_shows_file_values_and_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("serverconfig")).expect("mkdir");
        std::fs::write(
            dir.path().join("serverconfig/default"),
            "logs_spool=\"/srv/spool\"\n",
        )
        .expect("write");
        let cli = Cli::try_parse_from([
            "pysk-test",
            "--config-dir",
            dir.path().to_str().expect("utf-8"),
            "--host",
            "h.example",
        ])
        .expect("parses");
        const SPECS: &[Spec] = &[
            Spec::new("logs_spool", "/var/spool/pysk/wwwlogs", "the spool"),
            Spec::new("logs_memory", "256M", "sort memory"),
        ];
        let mut out = Vec::new();
        let report = Reporter::new("pysk-test", Level::Quiet);
        let settings = cli.common.settings(SPECS, &report).expect("settings");
        cli.common
            .print_config(&settings, &mut out)
            .expect("prints");
        let text = String::from_utf8(out).expect("utf-8");
        let path = dir.path().join("serverconfig/default");
        assert_eq!(
            text,
            format!(
                "# effective switches for h.example\n\
                 logs_memory=\"256M\"  # built-in default: sort memory\n\
                 logs_spool=\"/srv/spool\"  # {}:1\n",
                path.display()
            )
        );
    }
}
