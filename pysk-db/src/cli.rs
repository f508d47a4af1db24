//! The command line of `pysk-db`.

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
        "vacuum: a table or database that failed; mysql check: a table that reports an error; \
         list: a server that failed (named)",
    ),
    (exit::USAGE, "usage: a bad option"),
    (
        exit::DATAERR,
        "bad input: a name the name rule refuses, or a role, account or database that is not \
         what the request needs (named); nothing changed",
    ),
    (
        exit::UNAVAILABLE,
        "a server cannot be reached or refused a statement (named by its socket)",
    ),
    (exit::NOINPUT, "a password file that cannot be read"),
    (exit::SOFTWARE, "internal error (please report it)"),
    (
        exit::CANTCREAT,
        "the state directory, its lock file or a generated password's file cannot be written",
    ),
    (
        exit::IOERR,
        "an I/O error (writing stdout failed, a disk error)",
    ),
    (
        exit::TEMPFAIL,
        "another run holds the lock; nothing changed",
    ),
    (
        exit::NOPERM,
        "a password file others may read (chmod 600 it); pg: run as neither root nor db_pg_superuser",
    ),
    (
        exit::CONFIG,
        "bad configuration: a switch (db_pg_superuser: no such system account)",
    ),
];

/// pysk-db: PostgreSQL and MariaDB setup and upkeep
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
    /// PostgreSQL, reached as its superuser through the Unix socket
    #[command(subcommand)]
    Pg(PgCommand),
    /// MariaDB, reached as root through the Unix socket
    #[command(subcommand)]
    Mysql(MysqlCommand),
    /// List both servers' databases: owners, sizes, sessions
    #[command(after_help = "\
Example:
  pysk-db list --json | jq -r '.databases[] | select(.sessions > 0) | .name'

One line per database on stdout, tab-separated: server (postgresql or
mariadb), name, owners (MariaDB: the accounts with ALL on it), bytes,
sessions. A server not running here (no socket) is said on stderr and
left out. One that is there but fails (refuses the connection, a stale
socket) is named on stderr with its socket and left out, the other still
listed, and the run exits 1; --json has them in \"not_running\" and
\"failed\" as {\"server\", \"socket\"} (with \"reason\" when failed).")]
    List(ListArgs),
    /// Print the effective switches (defaults included) in shell syntax
    #[command(after_help = "\
Example:
  pysk-db --host db1.example.org config > /tmp/switches.sh")]
    Config,
}

/// The options of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The PostgreSQL subcommands.
#[derive(Debug, Subcommand)]
pub enum PgCommand {
    /// Take back what a fresh cluster grants everyone
    #[command(after_help = "\
Example:
  pysk-db pg setup --dry-run

PUBLIC keeps only CONNECT on template1, so no one else can put a schema
into it for every new database to copy (a database's own grants are not
copied: a new one grants PUBLIC CONNECT and TEMPORARY, as PostgreSQL
always does), and loses CREATE on the schema public of every database that
still grants it (PostgreSQL 14 and older). A second run changes nothing
and says so.")]
    Setup(SetupArgs),
    /// Make a database with its own owner
    #[command(after_help = "\
Example:
  pysk-db pg create shop --owner shop_admin --password-file /root/shop.pw

A NOLOGIN role named after the database, the owner a LOGIN role and a member
of it, the database owned by the owner, ALL on its schema public to the
owner (when its template has one). The password (from a file only its owner may read) reaches the
server only as a SCRAM-SHA-256 verifier made here; a stored verifier of the
same password is left alone, so a second run changes nothing and says so;
an owner that exists gets LOGIN when it lacks it, as the last step.
Refused (exit 65): a database that exists with another owner; a role named
like the database that is more than a bare NOLOGIN group role, or (for an
owner not yet its member) owns or holds anything or has members (its
members get what it may do); an owner that is a superuser, has CREATEROLE,
CREATEDB, REPLICATION or BYPASSRLS, is PostgreSQL's own or has members; an
owner named like the database; names beginning with pg_. An --encoding the server does not know: exit 2.
When CREATE DATABASE (which no transaction can hold) or the grant after
it fails, the roles and membership this run made are dropped again (exit
69, said). A database that exists with another encoding or locale is left
as it is, with a warning.")]
    Create(CreateArgs),
    /// Make another database for an existing owner
    #[command(after_help = "\
Example:
  pysk-db pg add-db shop_test --owner shop_admin

As create, for an owner that exists already; its password is left as it
is. An owner that does not exist, or is NOLOGIN, is refused (exit 65), as
is all create refuses.")]
    AddDb(AddDbArgs),
    /// Set a login role's password
    #[command(after_help = "\
Example:
  pysk-db pg password shop_admin --password-file /root/shop.pw

The password reaches the server only as a SCRAM-SHA-256 verifier made
here; when the stored verifier is one of the same password, nothing
changes. A superuser and PostgreSQL's own roles are refused (exit 65).")]
    Password(PasswordArgs),
    /// Drop a database and the group role named after it
    #[command(after_help = "\
Example:
  pysk-db pg drop shop --dry-run

A database with connections is refused (exit 65) unless --force, which
ends them. The owner role stays: it may own more. A role of the database's
name that is not a bare NOLOGIN group role as create makes it (a login, a
superuser) stays and is said, and so does a group role whose database is
not there (a role made by hand: its members would lose what it carries).
postgres, template0 and template1 are refused
(exit 65).")]
    Drop(DropArgs),
    /// Vacuum every table, skipping those another session holds
    #[command(after_help = "\
Examples (cron, nightly):
  pysk-db -q pg vacuum --all --analyze
  pysk-db pg vacuum shop --dry-run

Each table is vacuumed on its own with SKIP_LOCKED and the lock_timeout of
db_lock_timeout, so maintenance never queues behind another session's lock:
a table held elsewhere is skipped and named as a warning, which -q still
prints (--json names each by its schema and table). With --analyze, partitioned
tables are analyzed too. Every database but template0 (which takes no
connections) with --all; a named database that does not exist is refused
(exit 65), one that fails on the way is named (exit 1) and the others are
still done. Runs under the state lock (--wait); --reindex drops the
half-built indexes (_ccnew, _ccold) a stopped REINDEX leaves on a table
and its TOAST table, this run's and earlier runs', unless another session
is building an index there.")]
    Vacuum(VacuumArgs),
}

/// The options of `pg vacuum`: the databases named, or `--all`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["databases", "all"])))]
pub struct VacuumArgs {
    /// The databases
    #[arg(value_name = "DB")]
    pub databases: Vec<String>,
    /// Every database that takes connections
    #[arg(long)]
    pub all: bool,
    /// ANALYZE too
    #[arg(long)]
    pub analyze: bool,
    /// REINDEX each user table CONCURRENTLY too
    #[arg(long)]
    pub reindex: bool,
    /// Databases vacuumed at once (1 or more)
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Seconds a table's lock is waited for before it is skipped
    /// [switch: db_lock_timeout]
    #[arg(long, value_name = "SECONDS")]
    pub lock_timeout: Option<String>,
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

/// `CREATE DATABASE`'s options for a new database.
#[derive(Debug, clap::Args)]
pub struct MakeArgs {
    /// The new database's encoding [default: the template's]
    #[arg(long, value_name = "ENCODING")]
    pub encoding: Option<String>,
    /// The new database's locale [default: the template's]
    #[arg(long, value_name = "LOCALE")]
    pub locale: Option<String>,
    /// The database it is copied from [default: template1]
    #[arg(long, value_name = "DB")]
    pub template: Option<String>,
}

/// The options of `pg add-db`.
#[derive(Debug, clap::Args)]
pub struct AddDbArgs {
    /// The database
    pub database: String,
    /// Its owner, a login role that exists
    #[arg(long, value_name = "USER")]
    pub owner: String,
    /// How the new database is made.
    #[command(flatten)]
    pub make: MakeArgs,
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

/// The options of `pg password`.
#[derive(Debug, clap::Args)]
pub struct PasswordArgs {
    /// The login role
    pub user: String,
    /// The password, from a file only its owner may read
    #[arg(long, value_name = "FILE")]
    pub password_file: std::path::PathBuf,
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

/// The options of `pg drop`.
#[derive(Debug, clap::Args)]
pub struct DropArgs {
    /// The database
    pub database: String,
    /// End the database's connections
    #[arg(long)]
    pub force: bool,
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

/// The MariaDB subcommands.
#[derive(Debug, Subcommand)]
pub enum MysqlCommand {
    /// Remove what a fresh install leaves open to everyone
    #[command(after_help = "\
Example:
  pysk-db mysql setup --dry-run

Drops the anonymous accounts and root at any host but localhost, revokes
what the PUBLIC role may do on test and test\\_%, drops the test database
while it is empty; root stays reachable by unix_socket. With
db_mysql_auth=ed25519 the plugin auth_ed25519 is installed. A second run
changes nothing and says so.")]
    Setup(SetupArgs),
    /// Make a database with its account(s)
    #[command(after_help = "\
Example:
  pysk-db mysql create shop --user shop --account-host localhost --password-file /root/shop.pw

The account USER@HOST for each --account-host (localhost when none is
given; --host is the option every pysk tool has), the
database, ALL on it to each account. The password (from a file only its
owner may read) reaches the server only as the hash of db_mysql_auth made
here (ed25519 or mysql_native_password); a stored hash of the same password
is left alone, so a second run changes nothing and says so. Refused (exit
65, nothing changed): the server's own databases and accounts (root,
mysql, mariadb.sys, PUBLIC); an account that signs in otherwise
(unix_socket, a chain of plugins); a database that exists with grants to
other accounts (root and PUBLIC aside). A bad --account-host, --charset
or --collation exits 2, and so do a character set or collation the server
does not have and a collation of another character set (checked before
anything is made). A database that exists with another character set or collation
is left as it is and said (stderr, and --json's \"warnings\"). A new
account at a host with a wildcard (% or _) is said to be open to every
host that matches. When the server refuses a statement after the accounts
were made (exit 69), the accounts and the database this run made are
dropped again, latest first, and the error says so.")]
    Create(MysqlCreateArgs),
    /// Set an account's password
    #[command(after_help = "\
Example:
  pysk-db mysql password shop --password-file /root/shop.pw

The account USER at each --account-host (every host it has when none is
given) gets the hash of db_mysql_auth made here; an account whose stored
hash is one of the same password is left alone. An account of the other
plugin moves to db_mysql_auth's, and the plan and the report say so
(\"…'s password, and its authentication from mysql_native_password to
ed25519\"): a client without ed25519 (PHP's mysqlnd) then cannot log in.
Refused (exit 65,
nothing changed): an account that does not exist, the server's own (root,
mysql, mariadb.sys, PUBLIC), and one that signs in otherwise than by a
password alone (unix_socket, a chain of plugins).")]
    Password(MysqlPasswordArgs),
    /// Drop a database and the accounts made for it
    #[command(after_help = "\
Example:
  pysk-db mysql drop shop --dry-run

The database and the account USER (default: the database's name) at every
host it has. An account that also holds grants elsewhere (another
database, a global privilege, a role) is kept and said (on stderr, and in
--json's \"kept\"), its grants on the database (its tables, columns and
routines too) taken back. Sessions on the
database or of the accounts dropped (the list of processes, this run's
aside; it names a session's user, not its account: when an account of the
user is kept, only sessions from a client host that a dropped account's
host matches count) refuse the drop (exit 65, nothing changed)
unless --force, which ends them first with KILL CONNECTION (listed by
--dry-run). Nothing there: nothing to change. The server's own databases
and accounts are refused (exit 65).")]
    Drop(MysqlDropArgs),
    /// Check (or optimize, repair, analyze) every table
    #[command(after_help = "\
Examples (cron, weekly):
  pysk-db -q mysql check
  pysk-db mysql check --optimize --dry-run

Every table of every database but mysql, information_schema,
performance_schema and sys (system-versioned tables too), one statement
per table, each row the server reports shown (with -q only its warnings
and errors). --optimize rebuilds an InnoDB table whole, so a table larger
than the free space of the data directory is skipped and named.
--optimize, --repair and --analyze change tables: they run under a lock of their own
(--wait), and --dry-run lists the statements and the tables that would be
skipped (sized by the server's statistics; the real run analyzes each
InnoDB table first) and runs none. Exit 1 when a table reports an
error.")]
    Check(MysqlCheckArgs),
}

/// The options of `mysql password`.
#[derive(Debug, clap::Args)]
pub struct MysqlPasswordArgs {
    /// The account's user name
    pub user: String,
    /// A host of the account (repeatable; default: every host it has)
    #[arg(long = "account-host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// The password, from a file only its owner may read
    #[arg(long, value_name = "FILE")]
    pub password_file: std::path::PathBuf,
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

/// The options of `mysql drop`.
#[derive(Debug, clap::Args)]
pub struct MysqlDropArgs {
    /// The database
    pub database: String,
    /// The account's user name (default: the database's name)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// End the sessions on the database and of the accounts dropped first
    #[arg(long)]
    pub force: bool,
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

/// The options of `mysql check`.
#[derive(Debug, clap::Args)]
pub struct MysqlCheckArgs {
    /// OPTIMIZE TABLE instead of CHECK TABLE
    #[arg(long, group = "how")]
    pub optimize: bool,
    /// REPAIR TABLE instead of CHECK TABLE
    #[arg(long, group = "how")]
    pub repair: bool,
    /// ANALYZE TABLE instead of CHECK TABLE
    #[arg(long, group = "how")]
    pub analyze: bool,
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

/// The options of `mysql create`.
#[derive(Debug, clap::Args)]
pub struct MysqlCreateArgs {
    /// The database
    pub database: String,
    /// The account's user name (default: the database's name)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// A host the account may come from (repeatable)
    #[arg(
        long = "account-host",
        value_name = "HOST",
        default_value = "localhost"
    )]
    pub hosts: Vec<String>,
    /// The account's password, from a file only its owner may read
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "generate_password"
    )]
    pub password_file: Option<std::path::PathBuf>,
    /// Make a password, written once to OUT (mode 0600) and never
    /// printed; an existing OUT (an earlier run's) is the password, and
    /// an account that exists must already have it
    #[arg(long, value_name = "OUT", conflicts_with = "password_file")]
    pub generate_password: Option<std::path::PathBuf>,
    /// The database's character set
    #[arg(long, value_name = "CHARSET", default_value = "utf8mb4")]
    pub charset: String,
    /// Its collation (default: the character set's)
    #[arg(long, value_name = "COLLATION")]
    pub collation: Option<String>,
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

/// The options of `pg create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The database
    pub database: String,
    /// Its owner, a login role
    #[arg(long, value_name = "USER")]
    pub owner: String,
    /// The owner's password, from a file only its owner may read
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "generate_password"
    )]
    pub password_file: Option<std::path::PathBuf>,
    /// Make a password, written once to OUT (mode 0600) and never
    /// printed; an OUT that exists is read as the password, refused for
    /// an owner that exists unless it is that owner's password already
    #[arg(long, value_name = "OUT", conflicts_with = "password_file")]
    pub generate_password: Option<std::path::PathBuf>,
    /// How a new database is made.
    #[command(flatten)]
    pub make: MakeArgs,
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

/// The options of a `setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
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
        assert!(help.contains("db_wait=\"0\"  [option --wait]"), "{help}");
        assert_eq!(Cli::command().get_name(), NAME);
    }
}
