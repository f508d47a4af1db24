//! The command line of `pysk-ssl`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use pysk_common::cli::{CommonArgs, DryRunArgs, JsonArgs, WaitArgs};
use pysk_common::exit;
use pysk_common::settings;

use crate::settings::SWITCHES;

/// The tool's name, written once: clap, the reporter and `main` use it.
pub const NAME: &str = env!("CARGO_PKG_NAME");

/// Every exit code the tool can return, and what it means here.
const EXIT_CODES: &[(u8, &str)] = &[
    (exit::OK, "ok"),
    (
        exit::PARTIAL,
        "something needs attention (reported): check, served, a renew that failed for a name, \
         install's probe after the reload",
    ),
    (exit::USAGE, "usage: a bad option"),
    (
        exit::DATAERR,
        "a certificate or key was refused (the check that failed is named); nothing changed",
    ),
    (exit::NOINPUT, "an input file is missing"),
    (
        exit::UNAVAILABLE,
        "the reload command failed (the files are installed), or the ACME CA could not be \
         reached or refused a step (nothing installed)",
    ),
    (exit::SOFTWARE, "internal error (please report it)"),
    (
        exit::CANTCREAT,
        "a file cannot be written, or csr would replace a pending key (--new-key)",
    ),
    (
        exit::IOERR,
        "an I/O error (writing stdout failed, a disk error)",
    ),
    (
        exit::TEMPFAIL,
        "another run holds the lock; nothing changed",
    ),
    (exit::NOPERM, "permission denied"),
    (exit::CONFIG, "bad configuration: a switch"),
];

/// pysk-ssl: private keys, CSRs, certificates installed only when their
/// chain verifies, expiry reports
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
    /// Make a new private key and a certificate signing request for NAME
    #[command(after_help = "\
Example:
  pysk-ssl csr www.example.org --san example.org --key-type ec-p384

Writes DIR/NAME.csr (send it to the CA) and the new key as
DIR/NAME_pending.key (mode 0640, group ssl_key_group): the key a server
loads, DIR/NAME.key, is replaced only by `install`, together with a
certificate that matches it. --reuse-key signs the CSR with the pending key,
else the live one, instead of making a new key. A pending key that is
there already is not replaced unless --new-key says so (exit 73): its CSR
may be at a CA.")]
    Csr(CsrArgs),
    /// Install a signed certificate with its chain, only if every check passes
    #[command(after_help = "\
Example:
  pysk-ssl install www.example.org --cert www.crt --chain intermediate.pem

The checks, in order: key (the --key file, else NAME's pending key, else its
live key, matches the certificate), chain (ordered leaf first — a chain
given out of order is reordered — and every signature verifies up to a trust
anchor of the system's store or --ca-file; the anchor itself is not
installed), expiry (no certificate of the chain expires within --warn-days),
names (the certificate's DNS names cover NAME, wildcards as RFC 6125 says).
A failed check is named, exit 65, and nothing is changed. Then NAME.key,
NAME.crt, NAME_chain.crt and NAME_combined.crt change together (one
symbolic link flipped), and ssl_reload_command runs.")]
    Install(InstallArgs),
    /// Order a certificate from an ACME CA (HTTP-01) and install it
    #[command(after_help = "\
Example:
  pysk-ssl acme www.example.org --san example.org --webroot /var/www/acme

Makes a new key (kept pending), proves every name by writing the CA's token
under WEBROOT/.well-known/acme-challenge/ (the web server must serve it on
port 80 for each name), and installs the issued certificate through the
same checks as `install` (exit 65 if one fails, nothing changed), then runs
ssl_reload_command. The account is made on first use; its credentials are
kept in ssl_acme_account (mode 0600) and never printed. --ca-file is
trusted both for the connection to the CA and by the install's chain
check. The name is recorded as ACME-managed in
DIR/.acme/ (`list` shows it). A CA that cannot be reached or refuses a
step: exit 69, nothing installed.")]
    Acme(AcmeArgs),
    /// Renew every ACME-managed certificate that is due
    #[command(after_help = "\
Example (cron, daily):
  pysk-ssl -q renew

A certificate is due when less than a third of its lifetime is left, or
earlier when the CA's renewal window (ACME Renewal Information, RFC 9773)
opens earlier; the new order then names the certificate it replaces. A CA
that offers no window, or cannot answer, leaves the lifetime rule. Each
due name is ordered again as `acme` ordered it (the names, webroot and CA
recorded in DIR/.acme/NAME.json), with the account of ssl_acme_account,
and installed through the same checks, then ssl_reload_command runs.
--dry-run says which names are due and orders nothing. A name that fails is
reported and the others go on; exit 1 if any failed.")]
    Renew(RenewArgs),
    /// Check every installed certificate, its chain and its key
    #[command(after_help = "\
Example (cron, mail only when something needs attention):
  pysk-ssl -q check
Example (Nagios/Icinga):
  pysk-ssl check --nagios --warn-days 21 --crit-days 7

Exit 1 when something needs attention. --nagios prints a short status line
(the worst names first), then one line per certificate that needs attention
(Nagios' long output), and exits with Nagios' codes instead (0 ok, 1 warning, 2 critical, 3 unknown):
it deliberately leaves the sysexits codes of the other subcommands. Any error
of the run (the switches, DIR, the trust anchors) is then
\"SSL UNKNOWN - <the error>\", exit 3; only a command line that cannot be
parsed at all (an unknown option) exits 2 with the usage message.")]
    Check(CheckArgs),
    /// Compare the chain servers present with the one installed
    #[command(after_help = "\
Examples:
  pysk-ssl served www.example.org:443
  pysk-ssl served mail.example.org:25 mail.example.org:587 --starttls smtp
  pysk-ssl -q served --from /etc/pysk/ssl-endpoints
  pysk-ssl -q served --inventory

--name, --starttls and --expect apply to the HOST:PORT arguments; a list
gives each endpoint its own (# comments):
  www.example.org:443
  192.0.2.25:25 name=mail.example.org starttls=smtp
  192.0.2.25:993 name=mail.example.org expect=mail.example.org
The inventory's servers are probed at their address (else their name) with
their name as SNI, at the ports of their ssl= setting:
  mail.example.org 192.0.2.25 ssl=443,25/smtp,143/imap,110/pop3,993

For each endpoint: the served leaf is compared with DIR/NAME.crt — a newer
certificate on disk is \"renewed but not reloaded\" —, and the served chain
is judged as install judges one (path to a trust anchor, expiry within
--warn-days, names). An endpoint of the command line or a list must be
installed in DIR; an inventory server's certificate is compared when it is
installed here and otherwise judged alone (servers keep their certificates
on their own disks). Endpoints are probed concurrently (64 at a time); each
endpoint's whole probe is bounded by --timeout. Exit 1 when any endpoint
needs attention.")]
    Served(ServedArgs),
    /// List the installed certificates
    #[command(after_help = "\
Example:
  pysk-ssl list --json | jq -r '.certificates[] | select(.days_left < 30) | .name'")]
    List(ListArgs),
    /// Print the effective switches (defaults included) in shell syntax
    #[command(after_help = "\
Example:
  pysk-ssl --host web1.example.org config > /tmp/switches.sh")]
    Config,
}

/// Where the certificates live.
#[derive(Debug, clap::Args)]
pub struct DirArgs {
    /// The certificate directory [switch: ssl_dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The trust anchors.
#[derive(Debug, clap::Args)]
pub struct CaArgs {
    /// Trust the certificates of this PEM file instead of the system's
    /// store (a private CA) [switch: ssl_ca_file]
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// The options of `csr`.
#[derive(Debug, clap::Args)]
pub struct CsrArgs {
    /// The certificate's name (its first DNS name and the files' names)
    pub name: String,
    /// Another DNS name the certificate is for (repeatable; `*.` allowed)
    #[arg(long, value_name = "NAME")]
    pub san: Vec<String>,
    /// ec-p256, ec-p384, rsa2048 or rsa4096 [switch: ssl_key_type]
    #[arg(long, value_name = "TYPE")]
    pub key_type: Option<String>,
    /// Sign the CSR with the existing key (pending, else live)
    #[arg(long, conflicts_with = "new_key")]
    pub reuse_key: bool,
    /// Make a new key even when a pending one is there (its CSR may be at
    /// a CA: the certificate it brings back will match no key)
    #[arg(long)]
    pub new_key: bool,
    /// The directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The certificate's name
    pub name: String,
    /// The signed certificate (PEM or DER; further certificates in it are
    /// taken as chain)
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// The intermediate certificates (PEM), in any order
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// The private key (PEM) [default: NAME's pending key, else its live key]
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Refuse a chain with a certificate expiring within DAYS
    /// [switch: ssl_warn_days]
    #[arg(long, value_name = "DAYS")]
    pub warn_days: Option<String>,
    /// Trust anchors.
    #[command(flatten)]
    pub ca: CaArgs,
    /// The directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `acme`.
#[derive(Debug, clap::Args)]
pub struct AcmeArgs {
    /// The certificate's name (its first DNS name and the files' names)
    pub name: String,
    /// Another DNS name the certificate is for (repeatable; no wildcards:
    /// HTTP-01 cannot prove them)
    #[arg(long, value_name = "NAME")]
    pub san: Vec<String>,
    /// The directory the web server serves /.well-known/acme-challenge/ from
    #[arg(long, value_name = "DIR")]
    pub webroot: PathBuf,
    /// The ACME CA's directory URL [switch: ssl_acme_directory]
    #[arg(long, value_name = "URL")]
    pub directory: Option<String>,
    /// ec-p256, ec-p384, rsa2048 or rsa4096 [switch: ssl_key_type]
    #[arg(long, value_name = "TYPE")]
    pub key_type: Option<String>,
    /// Trust anchors.
    #[command(flatten)]
    pub ca: CaArgs,
    /// The directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `renew`.
#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    /// Trust anchors.
    #[command(flatten)]
    pub ca: CaArgs,
    /// The directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Warn about certificates expiring within DAYS [switch: ssl_warn_days]
    #[arg(long, value_name = "DAYS")]
    pub warn_days: Option<String>,
    /// Critical for certificates expiring within DAYS [switch: ssl_crit_days]
    #[arg(long, value_name = "DAYS")]
    pub crit_days: Option<String>,
    /// One status line and Nagios' exit codes (0, 1, 2, 3)
    #[arg(long, conflicts_with = "json")]
    pub nagios: bool,
    /// Trust anchors.
    #[command(flatten)]
    pub ca: CaArgs,
    /// The directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `served`.
#[derive(Debug, clap::Args)]
pub struct ServedArgs {
    /// HOST:PORT of each server to probe
    #[arg(value_name = "HOST:PORT", required_unless_present_any = ["from", "inventory"])]
    pub endpoints: Vec<String>,
    /// Also probe the endpoints listed in FILE (`-`: standard input), one
    /// a line: HOST:PORT [name=SNI] [starttls=PROTOCOL] [expect=NAME]
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Also probe every server of the inventory, at the ports of its ssl=
    /// setting (ssl=443,25/smtp; default 443)
    #[arg(long)]
    pub inventory: bool,
    /// The inventory [default: <config-dir>/hosts]
    #[arg(long, value_name = "FILE", requires = "inventory")]
    pub hosts: Option<PathBuf>,
    /// The name to send as SNI to the HOST:PORT arguments [default: the
    /// host]
    #[arg(long, value_name = "SNI")]
    pub name: Option<String>,
    /// Upgrade the HOST:PORT arguments' plain connections first: smtp,
    /// imap or pop3
    #[arg(long, value_name = "PROTOCOL")]
    pub starttls: Option<String>,
    /// Compare the HOST:PORT arguments with the installed certificate of
    /// NAME [default: the SNI name]
    #[arg(long, value_name = "NAME")]
    pub expect: Option<String>,
    /// Limit of each endpoint's whole probe: connect, STARTTLS, handshake
    /// [switch: ssl_timeout]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,
    /// Warn about a served chain expiring within DAYS [switch: ssl_warn_days]
    #[arg(long, value_name = "DAYS")]
    pub warn_days: Option<String>,
    /// Trust anchors.
    #[command(flatten)]
    pub ca: CaArgs,
    /// The directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The directory.
    #[command(flatten)]
    pub dir: DirArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent_and_help_lists_every_exit_code() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for (code, _) in EXIT_CODES {
            assert!(help.contains(&format!("\n  {code:>2}  ")), "{code}");
        }
        assert!(help.contains("ssl_wait=\"15\"  [option --wait]"), "{help}");
        assert_eq!(Cli::command().get_name(), NAME);
    }
}
