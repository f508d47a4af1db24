//! `pysk-dns build`: zone files and the `named.conf` include from the
//! snapshots, written only where something changed.
//!
//! Order of writes: the serial state first (so a serial is never handed
//! out twice for different content), then the zone files, then the
//! include, then stale zone files of pysk-dns' own are removed. Every file
//! is replaced atomically, the zone files and the include as one batch
//! made durable by a single `syncfs` (10,000 `fsync`s would dominate a
//! first build); a rebuild with nothing changed writes nothing.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pysk_common::atomic::{self, Batch, Options as WriteOptions};
use pysk_common::diff;
use pysk_common::exit::Outcome;
use pysk_common::inventory::Inventory;
use pysk_common::report::Reporter;

use crate::document::{self, Data, Record, Zone};
use crate::error::{DnsError, input_err, output_err};
use crate::name;
use crate::reload;
use crate::render::{self, MARKER, SoaTimers};
use crate::serial::{self, State};
use crate::snapshot;
use crate::zone::{self, Policy};

/// What `build` needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the snapshots and serials are.
    pub state_dir: PathBuf,
    /// Where the `db.<zone>` files go (absolute: named.conf names them).
    pub zone_dir: PathBuf,
    /// The `named.conf` include to write.
    pub include: PathBuf,
    /// Name servers for every zone, when set.
    pub policy: Policy,
    /// SOA fields from the switches.
    pub soa: SoaTimers,
    /// Extra options for every `zone` statement.
    pub zone_options: String,
    /// The zone the inventory's servers get address records in.
    pub servers_zone: Option<String>,
    /// Print the diffs instead of writing.
    pub dry_run: bool,
    /// Reload the name server after a change, and check what it serves.
    pub reload: Option<Reload>,
}

/// How to reload the name server and check it.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The command, split at blanks (`rndc reload`).
    pub command: String,
    /// Where to ask for the served SOA serials.
    pub server: SocketAddr,
    /// How long a zone may take to be served with its new serial.
    pub patience: Duration,
}

/// The label records from the inventory carry in place of a server name.
pub const INVENTORY: &str = "inventory";

/// One file `build` wants to change.
struct Change {
    path: PathBuf,
    old: Option<String>,
    /// The new content; `None` removes the file.
    new: Option<String>,
}

/// Builds the zones from the snapshots of `inventory`'s servers; writes
/// diffs to `out` with `--dry-run`.
pub fn build(
    inventory: &Inventory,
    options: &Options,
    reporter: &Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, DnsError> {
    let mut outcome = Outcome::Success;
    let mut inputs = Vec::new();
    for host in &inventory.hosts {
        match snapshot::load(&options.state_dir, &host.name)? {
            Some(snap) => {
                let zones = document::validate(&snap.document, &host.name).map_err(|reason| {
                    DnsError::State {
                        path: snapshot::path(&options.state_dir, &host.name),
                        reason,
                    }
                })?;
                inputs.push((host.name.clone(), zones));
            }
            None => {
                reporter.warn(format_args!(
                    "{}: no snapshot yet (run pysk-dns fetch); its zones are not built",
                    host.name
                ));
                outcome = Outcome::Partial;
            }
        }
    }
    if let Some(zone) = &options.servers_zone {
        inputs.push((
            INVENTORY.to_owned(),
            vec![servers_zone(zone, inventory, reporter)],
        ));
    }
    let zones = zone::assemble(&inputs, &options.policy);

    let mut state = State::load(&options.state_dir)?;
    let state_before = state.clone();
    let today = serial::today();
    let mut changes = Vec::new();
    let mut included = Vec::new();
    let mut written = Vec::new();
    for z in &zones {
        for c in &z.conflicts {
            reporter.warn(c);
            outcome = Outcome::Partial;
        }
        let path = options.zone_dir.join(format!("db.{}", z.name));
        let old = read_optional(&path)?;
        if let Some(why) = z.invalid() {
            reporter.warn(format_args!(
                "{}: not written: {why}; {}",
                z.name,
                if old.is_some() {
                    "its previous file stays"
                } else {
                    "it has no previous file"
                }
            ));
            outcome = Outcome::Partial;
            if old.is_some() {
                included.push(z.name.as_str());
            }
            continue;
        }
        included.push(z.name.as_str());
        let text = render::zone_file(z, &options.soa);
        if !state.zones.contains_key(&z.name)
            && let Some(seen) = old.as_deref().and_then(serial_in)
        {
            // The state was lost, but the file shows what secondaries saw.
            state.zones.insert(
                z.name.clone(),
                serial::Entry {
                    serial: seen,
                    sha256: String::new(),
                },
            );
        }
        let serial = state.serial_for(&z.name, &text, today);
        let new = text.with_serial(serial);
        if old.as_deref() != Some(new.as_str()) {
            reporter.info(format_args!("{}: serial {serial}", z.name));
            written.push((z.name.clone(), serial));
            changes.push(Change {
                path,
                old,
                new: Some(new),
            });
        }
    }
    let include_text = render::include(&included, &options.zone_dir, &options.zone_options);
    let old_include = read_optional(&options.include)?;
    if old_include.as_deref() != Some(include_text.as_str()) {
        changes.push(Change {
            path: options.include.clone(),
            old: old_include,
            new: Some(include_text),
        });
    }
    let keep: BTreeSet<String> = included.iter().map(|z| format!("db.{z}")).collect();
    for stale in stale_files(&options.zone_dir, &keep)? {
        reporter.info(format_args!(
            "{}: no server has it any more; removed",
            stale.display()
        ));
        let old = read_optional(&stale)?;
        changes.push(Change {
            path: stale,
            old,
            new: None,
        });
    }

    if options.dry_run {
        let state_path = serial::path(&options.state_dir);
        if state != state_before {
            let render = |s: &State| serde_json::to_string_pretty(s).unwrap_or_default() + "\n";
            let old = read_optional(&state_path)?.map(|_| render(&state_before));
            print_diff(out, &state_path, old.as_deref(), Some(&render(&state)))?;
        }
        for c in &changes {
            print_diff(out, &c.path, c.old.as_deref(), c.new.as_deref())?;
        }
        return Ok(outcome);
    }
    if changes.is_empty() {
        return Ok(outcome);
    }
    if state != state_before {
        state.save(&options.state_dir)?;
    }
    fs::create_dir_all(&options.zone_dir).map_err(output_err(&options.zone_dir))?;
    // Zone files first, the include that names them after (a batch renames
    // in staging order), stale files last.
    let mut batch = Batch::new();
    for c in &changes {
        if let Some(text) = &c.new {
            batch.stage(&c.path, text.as_bytes(), WriteOptions::default())?;
        }
    }
    batch.commit()?;
    for c in changes.iter().filter(|c| c.new.is_none()) {
        fs::remove_file(&c.path).map_err(output_err(&c.path))?;
    }
    atomic::sync_dir(&options.zone_dir).map_err(output_err(&options.zone_dir))?;

    if let Some(r) = &options.reload {
        reload::run_command(&r.command)?;
        let missing = reload::check_served(r.server, &written, r.patience);
        for (zone, serial, seen) in &missing {
            reporter.warn(format_args!(
                "{zone}: after the reload {} {seen}, not serial {serial}; see the name server's log",
                r.server
            ));
            outcome = Outcome::Partial;
        }
    }
    Ok(outcome)
}

/// The inventory's servers as address records of `zone`.
fn servers_zone(zone: &str, inventory: &Inventory, reporter: &Reporter) -> Zone {
    let mut records = Vec::new();
    for host in &inventory.hosts {
        let Some(address) = host.address else {
            continue;
        };
        if !name::is_within(&host.name, zone) {
            reporter.verbose(format_args!(
                "{}: outside dns_servers_zone {zone}; no address record",
                host.name
            ));
            continue;
        }
        let data = match address {
            std::net::IpAddr::V4(a) => Data::A(a),
            std::net::IpAddr::V6(a) => Data::Aaaa(a),
        };
        records.push(Record {
            owner: host.name.clone(),
            ttl: document::DEFAULT_TTL,
            data,
        });
    }
    Zone {
        name: zone.to_owned(),
        ttl: document::DEFAULT_TTL,
        ns: Vec::new(),
        records,
    }
}

/// The serial in a zone file pysk-dns wrote (`SOA <primary> <mbox> ( N`).
fn serial_in(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.contains("\tSOA\t"))?;
    let after = line.split_once("( ")?.1;
    after.split_whitespace().next()?.parse().ok()
}

fn read_optional(path: &Path) -> Result<Option<String>, DnsError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(input_err(path)(e)),
    }
}

/// Zone files in `dir` that pysk-dns wrote and no zone needs any more.
fn stale_files(dir: &Path, keep: &BTreeSet<String>) -> Result<Vec<PathBuf>, DnsError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(input_err(dir)(e)),
    };
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(input_err(dir))?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if !file.starts_with("db.") || keep.contains(file) {
            continue;
        }
        let path = entry.path();
        let ours = fs::read(&path)
            .map(|b| b.starts_with(MARKER.as_bytes()))
            .unwrap_or(false);
        if ours {
            stale.push(path);
        }
    }
    stale.sort();
    Ok(stale)
}

fn print_diff(
    out: &mut dyn Write,
    path: &Path,
    old: Option<&str>,
    new: Option<&str>,
) -> Result<(), DnsError> {
    out.write_all(diff::unified(path, old, new).as_bytes())
        .map_err(DnsError::Stdout)
}
