//! `pysk-dns build`: zone files and the `named.conf` include from the
//! snapshots, written only where something changed.
//!
//! A build is planned first, without touching anything ([`plan`]: zones
//! assembled and rendered, serials decided, the files to write and to
//! remove listed), then either shown (`--dry-run`: the diff of
//! [`Plan::show`], or with `--json` only the summary the build would give;
//! a dry run creates nothing, see [`Location::open_to_look`]) or applied
//! ([`Plan::apply`]). Order of writes: the serial state first
//! (so a serial is never handed out twice for different content), then the
//! zone files, then the include, then stale zone files of pysk-dns' own
//! are removed. Every file is replaced atomically, the zone files and the
//! include as one batch made durable by a single `syncfs` (10,000 `fsync`s
//! would dominate a first build); a rebuild with nothing changed writes
//! nothing. With `--reload`, the name server is reloaded after a change
//! and asked for every changed zone's serial.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use serde::Serialize;

use pysk_common::atomic::{self, Batch, Options as WriteOptions};
use pysk_common::error::{read_err, write_err};
use pysk_common::exit::Outcome;
use pysk_common::inventory::Inventory;
use pysk_common::report::{Kind, Reporter};
use pysk_common::{diff, marker};

use crate::bindcheck::{self, Checked};
use crate::cli;
use crate::document::{self, Data, Record, Zone};
use crate::error::DnsError;
use crate::name;
use crate::owner::{self, Owners};
use crate::reload;
use crate::render::{self, MARKER, SoaTimers};
use crate::reserved;
use crate::serial::{self, State};
use crate::snapshot;
use crate::state::Location;
use crate::summary::{self, BuildSummary, NotServed, ReloadReport};
use crate::zone::{self, Assembled, Policy};

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
    /// The program that checks each changed zone file before it is
    /// installed (`named-checkzone`); `None`: no check.
    pub checkzone: Option<String>,
    /// Zones no server may publish, besides public suffixes and
    /// special-use names (`dns_reserved_zones`).
    pub reserved: Vec<String>,
    /// Print the diffs instead of writing.
    pub dry_run: bool,
    /// Reload the name server after a change, and check what it serves.
    pub reload: Option<Reload>,
    /// The summary goes to stdout as `--json` instead of lines on stderr.
    pub json: bool,
}

/// How to reload the name server and check it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// What becomes of one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its file is written with a new serial.
    Written,
    /// Its file already holds what it should.
    Unchanged,
    /// It has a problem (reported); its previous file, if any, stays.
    NotWritten,
}

/// One zone in the plan.
#[derive(Debug, Clone)]
pub struct ZonePlan {
    /// The zone.
    pub zone: String,
    /// What becomes of it.
    pub status: Status,
    /// Its serial (none for a zone not written).
    pub serial: Option<u32>,
    /// Its file.
    pub file: PathBuf,
    /// Whether the include names it (every zone that has a file).
    pub included: bool,
}

/// One file `build` wants to change.
#[derive(Debug, Clone)]
pub struct Change {
    /// The file.
    pub path: PathBuf,
    /// What it holds now (`None`: it does not exist).
    pub old: Option<String>,
    /// The new content; `None` removes the file.
    pub new: Option<String>,
}

/// A build computed without touching anything.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What to tell the admin, in order: trouble as warnings, the zones
    /// and files that change as summary lines.
    pub notes: Vec<(Kind, String)>,
    /// Every zone, in the order they are built.
    pub zones: Vec<ZonePlan>,
    /// The zone files and the include to write (in this order), then the
    /// stale files to remove.
    pub changes: Vec<Change>,
    /// The serial state's file.
    pub state_file: PathBuf,
    /// The serial state as it is.
    before: State,
    /// The serial state as the plan leaves it.
    after: State,
    /// Servers whose snapshot is damaged: the zones they contributed keep
    /// their files.
    damaged: BTreeSet<String>,
    /// The zone file checker, until the changed files are checked.
    checkzone: Option<String>,
    /// The changed zone files the checker is still to see.
    unchecked: Vec<Unchecked>,
    /// The RRset owners' file.
    pub owners_file: PathBuf,
    /// Whether the plan changes the recorded RRset owners.
    owners_changed: bool,
    /// The RRset owners as the plan leaves them.
    owners_after: Owners,
}

/// What a build did, for the exit code and the `--json` summary.
#[derive(Debug)]
pub struct Built {
    /// Exit 1 when a server or zone needs attention.
    pub outcome: Outcome,
    /// The `--json` document.
    pub summary: BuildSummary,
}

/// Builds the zones from the snapshots of the servers of `location`'s
/// inventory, holding its lock: plans, reports the plan's notes, then
/// either shows the plan (`--dry-run`: the diffs on `out`, or with `--json`
/// only the summary) or applies it and reloads the name server if asked.
pub fn run(
    location: &Location,
    options: &Options,
    reporter: &Reporter,
    out: &mut dyn Write,
) -> Result<Built, DnsError> {
    let (inventory, _lock) = if options.dry_run {
        location.open_to_look()?
    } else {
        let (inventory, lock) = location.open()?;
        atomic::remove_stale_in(crate::state::written_dirs(options), reporter)?;
        (inventory, Some(lock))
    };
    let plan = plan(&inventory, options)?;
    plan.report(reporter, options.json);
    if options.dry_run {
        return plan.dry_run(options.json, out);
    }
    let wrote = plan.apply(options)?;
    let mut problems = plan.problems();
    let reloaded = match &options.reload {
        Some(r) => Some(plan.reload_after(r, wrote, reporter, &mut problems)?),
        None => None,
    };
    Ok(Built::new(summary::build(
        &plan, wrote, false, reloaded, problems,
    )))
}

impl Built {
    /// The result of a build that `summary` describes.
    fn new(summary: BuildSummary) -> Built {
        Built {
            outcome: outcome(&summary),
            summary,
        }
    }
}

/// Exit 1 when the summary lists a problem.
fn outcome(summary: &BuildSummary) -> Outcome {
    if summary.problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    }
}

/// Plans the build: reads the snapshots, the serial state and the files
/// as they are, and decides every zone's content, serial and file.
pub fn plan(inventory: &Inventory, options: &Options) -> Result<Plan, DnsError> {
    let mut notes = Vec::new();
    let mut damaged = BTreeSet::new();
    let owners_before = Owners::load(&options.state_dir)?;
    let (inputs, owners_after) =
        judged(inventory, options, &owners_before, &mut notes, &mut damaged)?;
    let owners_changed = owners_after != owners_before;
    // The documents and the owners as recorded are not needed past this
    // point: freed before every zone is rendered (the build's peak).
    drop(owners_before);
    let zones = zone::assemble(&inputs, &options.policy);
    drop(inputs);
    let before = State::load(&options.state_dir)?;
    let mut plan = Plan {
        owners_file: owner::path(&options.state_dir),
        owners_changed,
        owners_after,
        notes,
        zones: Vec::new(),
        changes: Vec::new(),
        state_file: serial::path(&options.state_dir),
        after: before.clone(),
        before,
        damaged,
        checkzone: options.checkzone.clone(),
        unchecked: Vec::new(),
    };
    // Rendering and reading the previous files is the CPU- and I/O-bound
    // part of a build of thousands of zones: done on every core; serials
    // are then decided in zone order, as they depend on the shared state.
    let rendered: Vec<Rendered> = zones
        .par_iter()
        .map(|z| Rendered::new(z, options))
        .collect::<Result<_, _>>()?;
    let today = serial::today();
    for (z, r) in zones.iter().zip(rendered) {
        plan.zone(z, r, today);
    }
    plan.check_zones();
    plan.keep_damaged(options)?;
    plan.include(options)?;
    plan.stale(options)?;
    Ok(plan)
}

/// Every server's zones as the ownership rule leaves them (see
/// [`owner`]; the inventory's `dns_servers_zone` judged as its owner),
/// and the owners after this build. A server without a snapshot, or with
/// a damaged one, keeps the RRsets it owns.
fn judged(
    inventory: &Inventory,
    options: &Options,
    before: &Owners,
    notes: &mut Vec<(Kind, String)>,
    damaged: &mut BTreeSet<String>,
) -> Result<(owner::Inputs, Owners), DnsError> {
    let lists = owner::lists(inventory, &options.reserved, notes);
    let mut inputs = inputs(inventory, options, notes, damaged)?;
    if let Some(zone) = &options.servers_zone {
        inputs.push((
            INVENTORY.to_owned(),
            vec![servers_zone(zone, inventory, notes)],
        ));
    }
    let unknown = inventory
        .hosts
        .iter()
        .filter(|h| !inputs.iter().any(|(s, _)| *s == h.name))
        .map(|h| h.name.clone())
        .collect();
    let ns_fixed = !options.policy.ns.is_empty();
    let judged = owner::judge(inputs, &lists, before, &unknown, ns_fixed);
    notes.extend(judged.notes);
    Ok((judged.inputs, judged.owners))
}

/// Every server's zones from its snapshot (a server without one is
/// reported; one whose snapshot is damaged is reported and added to
/// `damaged`), reserved zones left out and reported.
fn inputs(
    inventory: &Inventory,
    options: &Options,
    notes: &mut Vec<(Kind, String)>,
    damaged: &mut BTreeSet<String>,
) -> Result<owner::Inputs, DnsError> {
    let mut inputs = Vec::new();
    for host in &inventory.hosts {
        let path = snapshot::path(&options.state_dir, &host.name);
        let loaded = snapshot::load(&options.state_dir, &host.name).and_then(|snap| {
            snap.map(|s| document::validate(&s.document, &host.name))
                .transpose()
                .map_err(|reason| DnsError::State {
                    path: path.clone(),
                    reason,
                })
        });
        match loaded {
            Ok(Some(zones)) => {
                let zones = zones
                    .into_iter()
                    .filter(|z| allowed(z, &host.name, &options.reserved, notes))
                    .collect();
                inputs.push((host.name.clone(), zones));
            }
            Err(DnsError::State { path, reason }) => {
                notes.push((
                    Kind::Warning,
                    format!(
                        "{}: snapshot {} is damaged ({reason}); the zones it contributed \
                         keep their files until a fetch of it succeeds",
                        host.name,
                        path.display()
                    ),
                ));
                damaged.insert(host.name.clone());
            }
            Err(e) => return Err(e),
            Ok(None) => notes.push((
                Kind::Warning,
                format!(
                    "{}: no snapshot yet (run {} fetch); its zones are not built",
                    host.name,
                    cli::NAME
                ),
            )),
        }
    }
    Ok(inputs)
}

/// Whether `server` may publish the zone `z` at all: not a public suffix,
/// special-use or reserved zone (each refused one is reported).
fn allowed(z: &Zone, server: &str, reserved: &[String], notes: &mut Vec<(Kind, String)>) -> bool {
    let Some(why) = reserved::why(&z.name, reserved) else {
        return true;
    };
    notes.push((
        Kind::Warning,
        format!("{}: zone from {server} refused: {why}; left out", z.name),
    ));
    false
}

/// A changed zone file the checker is still to see, by its place in the
/// plan: its zone, its change and its `serial` note (which become a zone
/// not written and a warning if the checker refuses it).
#[derive(Debug, Clone)]
struct Unchecked {
    zone: usize,
    change: usize,
    note: usize,
    /// The servers its records come from, for the warning.
    servers: String,
}

/// The warning for `zone`, not written for `why`; `had_file`: its
/// previous file stays.
fn not_written_note(zone: &str, why: &str, had_file: bool) -> String {
    let stays = if had_file {
        "its previous file stays"
    } else {
        "it has no previous file"
    };
    format!("{zone}: not written: {why}; {stays}")
}

/// One zone's file as it is and as it would be rendered (without its
/// serial); `text` is `None` for a zone that is not written.
struct Rendered {
    path: PathBuf,
    old: Option<String>,
    text: Option<render::ZoneText>,
    why: Option<String>,
}

impl Rendered {
    fn new(z: &Assembled, options: &Options) -> Result<Rendered, DnsError> {
        let path = options.zone_dir.join(format!("db.{}", z.name));
        let why = z.invalid().or_else(|| bindcheck::missing_glue(z));
        Ok(Rendered {
            old: read_optional(&path)?,
            text: why.is_none().then(|| render::zone_file(z, &options.soa)),
            why,
            path,
        })
    }
}

impl Plan {
    /// Plans one assembled zone: its conflicts reported, its serial
    /// decided, and its file changed when it differs.
    fn zone(&mut self, z: &Assembled, rendered: Rendered, today: u32) {
        for c in &z.conflicts {
            self.notes.push((Kind::Warning, c.clone()));
        }
        let Rendered {
            path,
            old,
            text,
            why,
        } = rendered;
        let held = self.held_by_damaged(old.as_deref());
        let (Some(text), None) = (text, &held) else {
            let why = held.or(why).unwrap_or_default();
            self.not_written(z, &why, &path, old.is_some());
            return;
        };
        if let Some(seen) = old.as_deref().and_then(serial_in) {
            // The file shows what secondaries saw: never go below it, even
            // with a state restored from an older backup, or lost.
            let same = old.as_deref() == Some(text.with_serial(seen).as_str());
            self.after.at_least(&z.name, seen, &text, same);
        }
        let serial = self.after.serial_for(&z.name, &text, today);
        let new = text.with_serial(serial);
        if old.as_deref() == Some(new.as_str()) {
            self.add_zone(z, Status::Unchanged, Some(serial), &path, true);
            return;
        }
        if self.checkzone.is_some() {
            self.unchecked.push(Unchecked {
                zone: self.zones.len(),
                change: self.changes.len(),
                note: self.notes.len(),
                servers: z.servers.join(", "),
            });
        }
        self.notes
            .push((Kind::Info, format!("{}: serial {serial}", z.name)));
        self.add_zone(z, Status::Written, Some(serial), &path, true);
        self.changes.push(Change {
            path,
            old,
            new: Some(new),
        });
    }

    /// Reports a zone that is not written, for `why`; its previous file,
    /// if it has one (`had_file`), stays.
    fn not_written(&mut self, z: &Assembled, why: &str, path: &Path, had_file: bool) {
        self.notes
            .push((Kind::Warning, not_written_note(&z.name, why, had_file)));
        self.add_zone(z, Status::NotWritten, None, path, had_file);
    }

    /// Why a zone whose file is `old` is not rebuilt, if it is not: the
    /// file holds records of a server whose snapshot is damaged.
    fn held_by_damaged(&self, old: Option<&str>) -> Option<String> {
        let server = render::servers_of(old?)
            .into_iter()
            .find(|s| self.damaged.contains(*s))?;
        Some(format!(
            "it holds records of {server}, whose snapshot is damaged"
        ))
    }

    /// Checks the changed zone files with the checker (`dns_checkzone`),
    /// when there is one, all at once on every core; then, in zone order,
    /// a refused file is not written (its zone keeps its previous file
    /// and serial). A checker that is not installed is said once (`-v`).
    fn check_zones(&mut self) {
        let Some(program) = self.checkzone.take() else {
            return;
        };
        let unchecked = std::mem::take(&mut self.unchecked);
        let results = self.run_checks(&program, &unchecked);
        if results.contains(&Ok(Checked::Absent)) {
            self.notes.push((
                Kind::Verbose,
                format!("{program}: not installed; zone files are not checked"),
            ));
        }
        let mut refused = BTreeSet::new();
        for (u, result) in unchecked.iter().zip(results) {
            if let Err(why) = result {
                self.refuse(u, &why);
                refused.insert(u.change);
            }
        }
        let changes = std::mem::take(&mut self.changes);
        self.changes = changes
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !refused.contains(i))
            .map(|(_, c)| c)
            .collect();
    }

    /// What the checker `program` says of each of the `unchecked` files,
    /// in their order: passed when `named-checkconf -z` loads it in a
    /// batch (see [`bindcheck`]), else the checker's own verdict; run on
    /// rayon's pool.
    fn run_checks(&self, program: &str, unchecked: &[Unchecked]) -> Vec<Result<Checked, String>> {
        let zone_text = |u: &Unchecked| {
            let change = &self.changes[u.change];
            (
                &*self.zones[u.zone].zone,
                change.new.as_deref().unwrap_or_default(),
            )
        };
        let loaded: HashSet<String> = match bindcheck::checkconf_for(program) {
            Some(checkconf) => unchecked
                .par_chunks(bindcheck::batch_size(unchecked.len()))
                .map(|batch| {
                    let zones: Vec<(&str, &str)> = batch.iter().map(zone_text).collect();
                    bindcheck::loaded_by_checkconf(&checkconf, &zones)
                })
                .flatten_iter()
                .collect(),
            None => HashSet::new(),
        };
        unchecked
            .par_iter()
            .map(|u| {
                let (zone, text) = zone_text(u);
                if loaded.contains(zone) {
                    return Ok(Checked::Passed);
                }
                bindcheck::checkzone(program, zone, text, &self.changes[u.change].path)
            })
            .collect()
    }

    /// Turns the zone of `u`, which the checker refused for `why`, into
    /// one not written: its serial as before, its note a warning.
    fn refuse(&mut self, u: &Unchecked, why: &str) {
        let why = format!("{why} (its records come from {})", u.servers);
        let had_file = self.changes[u.change].old.is_some();
        let zone = &mut self.zones[u.zone];
        match self.before.zones.get(&zone.zone) {
            Some(e) => self.after.zones.insert(zone.zone.clone(), e.clone()),
            None => self.after.zones.remove(&zone.zone),
        };
        zone.status = Status::NotWritten;
        zone.serial = None;
        zone.included = had_file;
        self.notes[u.note] = (Kind::Warning, not_written_note(&zone.zone, &why, had_file));
    }

    /// Keeps the files of zones no snapshot has now but a server whose
    /// snapshot is damaged contributed to: they stay, named by the include.
    fn keep_damaged(&mut self, options: &Options) -> Result<(), DnsError> {
        if self.damaged.is_empty() {
            return Ok(());
        }
        let planned: BTreeSet<String> = self
            .zones
            .iter()
            .map(|z| format!("db.{}", z.zone))
            .collect();
        for file in stale_files(&options.zone_dir, &planned)? {
            let old = read_optional(&file)?;
            let (Some(why), Some(zone)) = (
                self.held_by_damaged(old.as_deref()),
                file.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("db.")),
            ) else {
                continue;
            };
            self.notes.push((
                Kind::Warning,
                format!("{zone}: not written: {why}; its previous file stays"),
            ));
            self.zones.push(ZonePlan {
                zone: zone.to_owned(),
                status: Status::NotWritten,
                serial: None,
                file: file.clone(),
                included: true,
            });
        }
        Ok(())
    }

    /// Records a zone's fate; `included` when the include names its file
    /// (every zone but one not written that has no previous file).
    fn add_zone(
        &mut self,
        z: &Assembled,
        status: Status,
        serial: Option<u32>,
        file: &Path,
        included: bool,
    ) {
        self.zones.push(ZonePlan {
            zone: z.name.clone(),
            status,
            serial,
            file: file.to_owned(),
            included,
        });
    }

    /// Plans the include naming every zone that has a file.
    fn include(&mut self, options: &Options) -> Result<(), DnsError> {
        let included: Vec<&str> = self
            .zones
            .iter()
            .filter(|z| z.included)
            .map(|z| z.zone.as_str())
            .collect();
        let text = render::include(&included, &options.zone_dir, &options.zone_options);
        let old = read_optional(&options.include)?;
        if old.as_deref() != Some(text.as_str()) {
            self.changes.push(Change {
                path: options.include.clone(),
                old,
                new: Some(text),
            });
        }
        Ok(())
    }

    /// Plans the removal of zone files of our own that no zone needs.
    fn stale(&mut self, options: &Options) -> Result<(), DnsError> {
        let keep: BTreeSet<String> = self
            .zones
            .iter()
            .filter(|z| z.included)
            .map(|z| format!("db.{}", z.zone))
            .collect();
        for stale in stale_files(&options.zone_dir, &keep)? {
            self.notes.push((
                Kind::Info,
                format!("{}: no server has it any more; removed", stale.display()),
            ));
            let old = read_optional(&stale)?;
            self.changes.push(Change {
                path: stale,
                old,
                new: None,
            });
        }
        Ok(())
    }

    /// Tells the admin the plan's notes: warnings always, the changes
    /// unless the summary goes out as `--json`.
    pub fn report(&self, reporter: &Reporter, json: bool) {
        for (kind, line) in &self.notes {
            match kind {
                Kind::Warning => reporter.warn(line),
                Kind::Info if !json => reporter.info(line),
                Kind::Info => {}
                Kind::Verbose => reporter.verbose(line),
                Kind::Debug => reporter.debug(line),
            }
        }
    }

    /// The plan's warnings.
    pub fn problems(&self) -> Vec<String> {
        self.notes
            .iter()
            .filter(|(kind, _)| *kind == Kind::Warning)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Whether the serial state changes.
    pub fn state_changes(&self) -> bool {
        self.after != self.before
    }

    /// Whether the recorded RRset owners change.
    pub fn owners_change(&self) -> bool {
        self.owners_changed
    }

    /// `--dry-run`: the diffs on `out` (without `json`), and the summary
    /// the real build would give, marked as a dry run.
    fn dry_run(&self, json: bool, out: &mut dyn Write) -> Result<Built, DnsError> {
        if !json {
            self.show(out)?;
        }
        let would_write = !self.changes.is_empty();
        Ok(Built::new(summary::build(
            self,
            would_write,
            true,
            None,
            self.problems(),
        )))
    }

    /// Writes the unified diff of every file the plan would change to
    /// `out`, the serial state first (its new side exactly the bytes
    /// [`State::save`] writes).
    pub fn show(&self, out: &mut dyn Write) -> Result<(), DnsError> {
        if self.state_changes() {
            let old = read_optional(&self.state_file)?;
            let new = self.after.text()?;
            print_diff(out, &self.state_file, old.as_deref(), Some(&new))?;
        }
        if self.owners_change() {
            let old = read_optional(&self.owners_file)?;
            let new = self.owners_after.text()?;
            print_diff(out, &self.owners_file, old.as_deref(), Some(&new))?;
        }
        for c in &self.changes {
            print_diff(out, &c.path, c.old.as_deref(), c.new.as_deref())?;
        }
        out.flush().map_err(pysk_common::Error::Stdout)?;
        Ok(())
    }

    /// Writes the plan: the RRset owners when they changed, the serial
    /// state, then the zone files and the include as one batch, then the
    /// stale files removed. Whether any zone file or the include was
    /// written (none is when no file changes).
    pub fn apply(&self, options: &Options) -> Result<bool, DnsError> {
        if self.owners_change() {
            self.owners_after.save(&options.state_dir)?;
        }
        // The state alone changes when a zone file shows a higher serial
        // than a state restored from an older backup.
        if self.state_changes() {
            self.after.save(&options.state_dir)?;
        }
        if self.changes.is_empty() {
            return Ok(false);
        }
        let dir = &options.zone_dir;
        fs::create_dir_all(dir).map_err(write_err(dir))?;
        // Zone files first, the include that names them after (a batch
        // renames in staging order), stale files last.
        let mut batch = Batch::new();
        for c in &self.changes {
            if let Some(text) = &c.new {
                batch.stage(&c.path, text.as_bytes(), WriteOptions::default())?;
            }
        }
        batch.commit()?;
        for c in self.changes.iter().filter(|c| c.new.is_none()) {
            fs::remove_file(&c.path).map_err(write_err(&c.path))?;
        }
        atomic::sync_dir(dir).map_err(write_err(dir))?;
        Ok(true)
    }

    /// `--reload`: after a change (`wrote`), runs the reload command and
    /// checks that every written zone is served with its new serial; each
    /// zone that is not is warned about and added to `problems`.
    fn reload_after(
        &self,
        r: &Reload,
        wrote: bool,
        reporter: &Reporter,
        problems: &mut Vec<String>,
    ) -> Result<ReloadReport, DnsError> {
        if !wrote {
            return Ok(ReloadReport {
                ran: false,
                not_served: Vec::new(),
            });
        }
        let done = self.reload(r)?;
        for z in &done.not_served {
            let line = format!(
                "{}: after the reload {} {}, not serial {}; see the name server's log",
                z.zone, r.server, z.seen, z.serial
            );
            reporter.warn(&line);
            problems.push(line);
        }
        Ok(done)
    }

    /// Runs the reload command, then waits for every written zone to be
    /// served with its new serial; lists the zones that are not, each
    /// with what was seen instead.
    pub fn reload(&self, r: &Reload) -> Result<ReloadReport, DnsError> {
        reload::run_command(&r.command)?;
        let written: Vec<(String, u32)> = self
            .zones
            .iter()
            .filter(|z| z.status == Status::Written)
            .filter_map(|z| Some((z.zone.clone(), z.serial?)))
            .collect();
        let missing = reload::check_served(r.server, &written, r.patience);
        Ok(ReloadReport {
            ran: true,
            not_served: missing
                .into_iter()
                .map(|(zone, serial, seen)| NotServed { zone, serial, seen })
                .collect(),
        })
    }
}

/// The inventory's servers as address records of `zone`.
fn servers_zone(zone: &str, inventory: &Inventory, notes: &mut Vec<(Kind, String)>) -> Zone {
    let mut records = Vec::new();
    for host in &inventory.hosts {
        let Some(address) = host.address else {
            continue;
        };
        if !name::is_within(&host.name, zone) {
            notes.push((
                Kind::Verbose,
                format!(
                    "{}: outside dns_servers_zone {zone}; no address record",
                    host.name
                ),
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
        Err(e) => Err(read_err(path)(e).into()),
    }
}

/// Zone files in `dir` that pysk-dns wrote (they carry its marker) and no
/// zone needs any more.
fn stale_files(dir: &Path, keep: &BTreeSet<String>) -> Result<Vec<PathBuf>, DnsError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(dir)(e).into()),
    };
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err(dir))?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if !file.starts_with("db.") || keep.contains(file) {
            continue;
        }
        let path = entry.path();
        // Only plain files; a directory or a link of that name is not ours.
        if !entry.file_type().map_err(read_err(&path))?.is_file() {
            continue;
        }
        if marker::carries(&path, MARKER).map_err(read_err(&path))? {
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
        .map_err(pysk_common::Error::Stdout)?;
    Ok(())
}
