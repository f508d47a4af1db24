//! Who may publish which names: the ownership rule.
//!
//! A managed server is a customer's machine, so its document must not
//! reach other servers' names. Every RRset (owner name and type; a zone's
//! `ns` list is the RRset `<zone> NS`) is judged before the zones are
//! assembled:
//!
//! - Where the inventory gives servers a `zones=` list (domains, each
//!   covering its subdomains), only the servers listing the deepest listed
//!   domain that covers a name may publish at it, and they may combine
//!   records there; a server with a list publishes nothing outside it.
//! - Elsewhere each RRset belongs to the server that published it first
//!   (recorded in `<state>/owners.json`; first builds go by inventory
//!   order) until that server stops publishing it, when it passes to the
//!   next (reported). Another server's identical RRset is combined with
//!   it, a differing one is a conflict.
//!   When the servers left differ, the RRset is held (left out, reported).
//!   The owner's TTLs are served.
//! - A CNAME or a delegation (an NS record) at or above another
//!   server's names is a conflict; the one that was not already there
//!   yields, and when both are new, the CNAME or delegation does.
//! - A new zone above another server's owned zone yields, and none is
//!   claimed over the names of a server whose document is not at hand.
//! - The inventory's `dns_servers_zone` addresses belong to it, always.
//!
//! A conflict is reported naming both servers and the refused RRset left
//! out; the owner's data stays as it was. New names and types at or below
//! a name another server publishes are accepted (Pysk's nested merge) and
//! listed with `-v`: a `zones=` list is how an admin closes that door.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use pysk_common::inventory::Inventory;
use pysk_common::report::Kind;

use crate::build::INVENTORY;
use crate::document::{Data, Zone};
use crate::error::DnsError;
use crate::name::{self, Rule};
use crate::reserved;
use crate::state;

/// The recorded owners: by RRset (`"<name> <TYPE>"`), the server that
/// owns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owners {
    /// By RRset.
    pub rrsets: BTreeMap<String, String>,
}

/// Where the owners are recorded.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("owners.json")
}

impl Owners {
    /// Reads the owners file; empty when there is none yet.
    pub fn load(state_dir: &Path) -> Result<Owners, DnsError> {
        state::load_json(path(state_dir))
    }

    /// The owners file's content, as [`Owners::save`] writes it.
    pub fn text(&self) -> Result<String, DnsError> {
        state::json_text(self, "owners")
    }

    /// Replaces the owners file atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), DnsError> {
        state::save_json(&path(state_dir), self, "owners")
    }
}

/// The inventory's `zones=` lists, by server; a malformed domain is
/// reported and not listed (the server may then publish less, never more).
pub fn lists(inventory: &Inventory, reserved: &[String], notes: &mut Vec<(Kind, String)>) -> Lists {
    let mut lists = Lists::new();
    for host in &inventory.hosts {
        let Some(text) = host.settings.get("zones") else {
            continue;
        };
        let list = lists.entry(host.name.clone()).or_default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let checked = name::absolute(word, Rule::Host, false)
                .and_then(|d| reserved::why(&d, reserved).map_or(Ok(d), Err));
            match checked {
                Ok(domain) => list.push(domain),
                Err(why) => notes.push((
                    Kind::Warning,
                    format!(
                        "{} (inventory line {}): zones= {word:?}: {why}; not listed",
                        host.name, host.line
                    ),
                )),
            }
        }
    }
    lists
}

/// Every server's zones, by server in inventory order.
pub type Inputs = Vec<(String, Vec<Zone>)>;

/// The `zones=` lists by server.
pub type Lists = BTreeMap<String, Vec<String>>;

/// The servers' zones with what they may not publish left out, the owners
/// to record, and what to report.
#[derive(Debug)]
pub struct Judged {
    /// The inputs as they are assembled.
    pub inputs: Inputs,
    /// The owners after this build.
    pub owners: Owners,
    /// Conflicts (warnings), handovers and nested names.
    pub notes: Vec<(Kind, String)>,
}

/// A name, by its place in [`Names`]: ids are numbered in the names'
/// string order, so maps keyed by them iterate as maps keyed by the names.
type Id = u32;

/// A server, by its place in [`Servers`] (alphabetical, as names sort).
type Srv = u32;

/// One RRset: owner name and type.
type Key = (Id, &'static str);

/// The RRset types a key can have (`ns`: a zone's `ns` list).
const TYPES: [&str; 9] = ["A", "AAAA", "CAA", "CNAME", "MX", "NS", "SRV", "TXT", "ns"];

/// Every name the judgement looks at (owners, zones, recorded owners,
/// listed domains) and all their parents, each stored once: the maps and
/// parent walks of 200,000 RRsets then compare and hash numbers, not
/// strings.
struct Names {
    text: Vec<String>,
    index: HashMap<String, Id>,
    parent: Vec<Option<Id>>,
}

impl Names {
    fn new<'n>(all: impl Iterator<Item = &'n str>) -> Names {
        let mut set: HashSet<&str> = HashSet::new();
        for n in all {
            let mut cur = Some(n);
            // A name seen before came with all its parents.
            while let Some(d) = cur.filter(|d| set.insert(d)) {
                cur = name::parent(d);
            }
        }
        let mut text: Vec<&str> = set.into_iter().collect();
        text.sort_unstable();
        let index: HashMap<String, Id> = text
            .iter()
            .zip(0..)
            .map(|(t, i)| ((*t).to_owned(), i))
            .collect();
        let parent = text
            .iter()
            .map(|t| name::parent(t).and_then(|p| index.get(p).copied()))
            .collect();
        Names {
            text: text.into_iter().map(str::to_owned).collect(),
            index,
            parent,
        }
    }

    /// The id of `n`, which [`Names::new`] was given (or a parent of).
    fn id(&self, n: &str) -> Id {
        self.index[n]
    }

    fn text(&self, id: Id) -> &str {
        &self.text[id as usize]
    }

    /// `id`, its parent, its parent's parent … up to the top.
    fn line(&self, id: Id) -> impl Iterator<Item = Id> + '_ {
        std::iter::successors(Some(id), |i| self.parent[*i as usize])
    }
}

/// Every server named: in the inputs, the recorded owners, the lists and
/// the servers without a document at hand; alphabetical.
struct Servers(Vec<String>);

impl Servers {
    /// The id of `s`, which the table was built with.
    fn id(&self, s: &str) -> Srv {
        self.0
            .binary_search_by(|x| x.as_str().cmp(s))
            .map_or(Srv::MAX, |i| i as Srv)
    }

    fn name(&self, s: Srv) -> &str {
        self.0.get(s as usize).map_or("", String::as_str)
    }

    /// The names of `set`, comma-separated.
    fn join(&self, set: &[Srv]) -> String {
        let names: Vec<&str> = set.iter().map(|s| self.name(*s)).collect();
        names.join(", ")
    }
}

/// Adds `s` to the sorted set `set`.
fn add(set: &mut Vec<Srv>, s: Srv) {
    if let Err(i) = set.binary_search(&s) {
        set.insert(i, s);
    }
}

/// What a server may do at a name.
enum Permit {
    /// Its `zones=` list covers the name.
    Listed,
    /// First publisher owns.
    First,
    /// Not at all, for this reason.
    Refused(String),
}

/// Judges every server's zones (`inputs` in inventory order, the
/// inventory's own zone under [`INVENTORY`], which owns its RRsets
/// whatever the others publish) against the lists and the owners
/// `before` (the inventory's are not recorded). The RRsets of the servers
/// in `unknown` (in the inventory, but without a document at hand) stay
/// theirs. With `ns_fixed` (`dns_ns`)
/// the zones' `ns` lists are not judged.
pub fn judge(
    inputs: Inputs,
    lists: &Lists,
    before: &Owners,
    unknown: &HashSet<String>,
    ns_fixed: bool,
) -> Judged {
    let mut j = Judge::new(&inputs, lists, before, unknown, ns_fixed);
    let inputs = j.zones_allowed(inputs);
    let (keys, places, mut accepted, owners) = {
        let table = Table::new(&j, &inputs);
        let (accepted, owners, kept) = j.rrsets(&table);
        (table.keys, table.places, accepted, (owners, kept))
    };
    let (mut owners, kept) = owners;
    j.structure(&keys, &mut accepted, &kept);
    j.nested(&inputs, &keys, &accepted);
    for (owner, servers) in owners.iter_mut().zip(&accepted) {
        if servers.is_empty() {
            *owner = None;
        }
    }
    let recorded = j.recorded(&keys, &owners);
    Judged {
        inputs: filter(inputs, &j, &places, &accepted, &owners),
        owners: recorded,
        notes: j.notes,
    }
}

struct Judge<'a> {
    names: Names,
    servers: Servers,
    /// The servers with a `zones=` list.
    listing: HashSet<Srv>,
    /// The servers listing each listed domain, in server order.
    claimed: HashMap<Id, Vec<Srv>>,
    before: &'a Owners,
    /// `dns_ns` sets the name servers: the `ns` lists are not judged.
    ns_fixed: bool,
    unknown: HashSet<Srv>,
    inventory: Srv,
    /// The RRsets (`"<name> <TYPE>"`) held for their recorded owner.
    held: HashSet<String>,
    notes: Vec<(Kind, String)>,
}

/// An RRset, by its place in [`Table::keys`].
type Slot = u32;

/// One record's data as published, borrowed: a record's, or a name of a
/// zone's `ns` list (as `Data::Ns` would compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rdata<'i> {
    Record(&'i Data),
    Ns(&'i str),
}

/// Where each zone's RRsets are in the table, by server and zone as in
/// the inputs: its `ns` list's (when any server publishes `<zone> ns`)
/// and each record's.
type Places = Vec<Vec<(Option<Slot>, Vec<Slot>)>>;

/// Every RRset published (the zones' `ns` lists as `<zone> ns` unless
/// `dns_ns` fixes them), numbered in key order: the judgement keeps its
/// decisions in vectors by slot, looked up by number.
struct Table<'i> {
    /// By slot, sorted.
    keys: Vec<Key>,
    /// Each publisher's data at each RRset.
    published: Published<'i>,
    /// By slot, the recorded owner.
    owned: Vec<Option<Srv>>,
    places: Places,
}

impl<'i> Table<'i> {
    fn new(j: &Judge, inputs: &'i Inputs) -> Table<'i> {
        let mut slots: HashMap<Key, Slot> = HashMap::new();
        let mut keys = Vec::new();
        let mut slot = |key: Key| {
            *slots.entry(key).or_insert_with(|| {
                keys.push(key);
                (keys.len() - 1) as Slot
            })
        };
        let mut places: Places = inputs
            .iter()
            .map(|(_, zones)| {
                let mut zone_places = Vec::new();
                for z in zones {
                    let ns = (!j.ns_fixed && !z.ns.is_empty())
                        .then(|| slot((j.names.id(&z.name), "ns")));
                    let records = z
                        .records
                        .iter()
                        .map(|r| slot((j.names.id(&r.owner), r.data.type_name())))
                        .collect();
                    zone_places.push((ns, records));
                }
                zone_places
            })
            .collect();
        // A zone without an `ns` list still has the place of its zone's.
        for ((_, zones), zone_places) in inputs.iter().zip(&mut places) {
            for (z, (ns, _)) in zones.iter().zip(zone_places) {
                *ns = slots.get(&(j.names.id(&z.name), "ns")).copied();
            }
        }
        let rank = sort_slots(&mut keys);
        for (ns, records) in places.iter_mut().flatten() {
            if let Some(n) = ns {
                *n = rank[*n as usize];
            }
            for r in records {
                *r = rank[*r as usize];
            }
        }
        let published = publications(j, inputs, &places, keys.len());
        let owned = owned(j, &slots, &rank, keys.len());
        Table {
            keys,
            published,
            owned,
            places,
        }
    }
}

/// Sorts `keys`; the new slot of each old one.
fn sort_slots(keys: &mut Vec<Key>) -> Vec<Slot> {
    let mut order: Vec<Slot> = (0..keys.len() as Slot).collect();
    order.sort_unstable_by_key(|i| keys[*i as usize]);
    let mut rank = vec![0; keys.len()];
    for (new, old) in order.iter().enumerate() {
        rank[*old as usize] = new as Slot;
    }
    *keys = order.iter().map(|i| keys[*i as usize]).collect();
    rank
}

/// What each server publishes at each RRset, in one sorted list.
struct Published<'i> {
    /// By slot, then server in inventory order: the data, sorted.
    data: Vec<Rdata<'i>>,
    /// Each (slot, server)'s part of `data`: the server and where its
    /// data ends; in the order of `data`.
    parts: Vec<(Srv, usize)>,
    /// By slot, where its parts end.
    ends: Vec<usize>,
}

impl<'i> Published<'i> {
    /// The publishers of `slot`, each with its data, in inventory order.
    fn at(&self, slot: usize) -> impl Iterator<Item = (Srv, &[Rdata<'i>])> {
        let first = slot.checked_sub(1).map_or(0, |s| self.ends[s]);
        let parts = &self.parts[first..self.ends[slot]];
        let mut start = first.checked_sub(1).map_or(0, |p| self.parts[p].1);
        parts.iter().map(move |(srv, end)| {
            let data = &self.data[start..*end];
            start = *end;
            (*srv, data)
        })
    }
}

/// What each server publishes, by slot and server in inventory order.
fn publications<'i>(j: &Judge, inputs: &'i Inputs, places: &Places, len: usize) -> Published<'i> {
    let mut entries: Vec<(Slot, usize, Rdata)> = Vec::new();
    for (i, ((_, zones), zone_places)) in inputs.iter().zip(places).enumerate() {
        for (z, (ns, records)) in zones.iter().zip(zone_places) {
            for (r, s) in z.records.iter().zip(records) {
                entries.push((*s, i, Rdata::Record(&r.data)));
            }
            if let (Some(s), false) = (ns, z.ns.is_empty() || j.ns_fixed) {
                entries.extend(z.ns.iter().map(|n| (*s, i, Rdata::Ns(n))));
            }
        }
    }
    entries.sort_unstable();
    entries.dedup();
    let srv: Vec<Srv> = inputs.iter().map(|(s, _)| j.servers.id(s)).collect();
    let mut published = Published {
        data: Vec::with_capacity(entries.len()),
        parts: Vec::new(),
        ends: vec![0; len],
    };
    for (n, (slot, i, data)) in entries.iter().enumerate() {
        published.data.push(*data);
        if entries
            .get(n + 1)
            .is_none_or(|(s, k, _)| (s, k) != (slot, i))
        {
            published.parts.push((srv[*i], n + 1));
            published.ends[*slot as usize] = published.parts.len();
        }
    }
    published
}

/// By slot, the owner recorded in `before`.
fn owned(j: &Judge, slots: &HashMap<Key, Slot>, rank: &[Slot], len: usize) -> Vec<Option<Srv>> {
    let mut owned = vec![None; len];
    for (k, s) in &j.before.rrsets {
        let (n, t) = split_key(k);
        let Some(t) = TYPES.iter().find(|x| **x == t) else {
            continue;
        };
        let Some(id) = j.names.index.get(n) else {
            continue;
        };
        if let Some(slot) = slots.get(&(*id, *t)) {
            owned[rank[*slot as usize] as usize] = Some(j.servers.id(s));
        }
    }
    owned
}

/// The name of a recorded RRset `"<name> <TYPE>"`, and its type.
fn split_key(key: &str) -> (&str, &str) {
    key.rsplit_once(' ').unwrap_or((key, ""))
}

/// By slot, the servers allowed each RRset (sorted; empty: none).
type Accepted = Vec<Vec<Srv>>;

impl<'a> Judge<'a> {
    fn new(
        inputs: &Inputs,
        lists: &Lists,
        before: &'a Owners,
        unknown: &HashSet<String>,
        ns_fixed: bool,
    ) -> Judge<'a> {
        let names = Names::new(
            inputs
                .iter()
                .flat_map(|(_, zs)| zs)
                .flat_map(|z| {
                    std::iter::once(z.name.as_str()).chain(z.records.iter().map(|r| &*r.owner))
                })
                .chain(before.rrsets.keys().map(|k| split_key(k).0))
                .chain(lists.values().flatten().map(String::as_str)),
        );
        let mut all: Vec<String> = inputs.iter().map(|(s, _)| s.clone()).collect();
        all.extend(before.rrsets.values().cloned());
        all.extend(lists.keys().cloned());
        all.extend(unknown.iter().cloned());
        all.push(INVENTORY.to_owned());
        all.sort_unstable();
        all.dedup();
        let servers = Servers(all);
        let mut claimed: HashMap<Id, Vec<Srv>> = HashMap::new();
        for (server, list) in lists {
            for domain in list {
                add(
                    claimed.entry(names.id(domain)).or_default(),
                    servers.id(server),
                );
            }
        }
        Judge {
            listing: lists.keys().map(|s| servers.id(s)).collect(),
            unknown: unknown.iter().map(|s| servers.id(s)).collect(),
            inventory: servers.id(INVENTORY),
            names,
            servers,
            claimed,
            before,
            ns_fixed,
            held: HashSet::new(),
            notes: Vec::new(),
        }
    }

    fn warn(&mut self, line: String) {
        self.notes.push((Kind::Warning, line));
    }

    /// `"<name> <TYPE>"`, as messages name an RRset.
    fn rrset(&self, key: &Key) -> String {
        format!("{} {}", self.names.text(key.0), key.1)
    }

    /// What `server` may do at `name`.
    fn permit(&self, name: Id, server: Srv) -> Permit {
        if server == self.inventory {
            return Permit::First;
        }
        for n in self.names.line(name) {
            if let Some(holders) = self.claimed.get(&n) {
                return if holders.contains(&server) {
                    Permit::Listed
                } else {
                    Permit::Refused(format!(
                        "{} is given to {} by zones=",
                        self.names.text(n),
                        self.servers.join(holders)
                    ))
                };
            }
        }
        if self.listing.contains(&server) {
            Permit::Refused("outside its zones= list".to_owned())
        } else {
            Permit::First
        }
    }

    /// The zones each server may publish at all: their apex permitted,
    /// and a new claim not above another server's zone (see [`Claims`]).
    fn zones_allowed(&mut self, inputs: Inputs) -> Inputs {
        let claims = Claims::new(self, &inputs);
        let mut out = Vec::new();
        for (server, zones) in inputs {
            let srv = self.servers.id(&server);
            let mut kept = Vec::new();
            for z in zones {
                let apex = self.names.id(&z.name);
                let why = match self.permit(apex, srv) {
                    Permit::Refused(why) => Some(why),
                    Permit::Listed => None,
                    Permit::First => claims.refused(self, apex, srv),
                };
                if let Some(why) = why {
                    self.warn(format!(
                        "{}: zone from {server} refused: {why}; left out",
                        z.name
                    ));
                } else {
                    kept.push(z);
                }
            }
            out.push((server, kept));
        }
        out
    }

    /// Decides every RRset: the servers accepted for it, the first-publisher
    /// owners, and whether its owner stays from `before`; all by slot.
    fn rrsets(&mut self, table: &Table) -> (Accepted, Vec<Option<Srv>>, Vec<bool>) {
        let len = table.keys.len();
        let mut accepted: Accepted = vec![Vec::new(); len];
        let mut owners = vec![None; len];
        let mut kept = vec![false; len];
        let mut publishers = Vec::new();
        for (slot, key) in table.keys.iter().enumerate() {
            publishers.clear();
            publishers.extend(table.published.at(slot));
            let mut first = Vec::new();
            let inventory = publishers.iter().any(|(s, _)| *s == self.inventory);
            for (server, set) in &publishers {
                match self.permit(key.0, *server) {
                    Permit::Listed if !inventory => add(&mut accepted[slot], *server),
                    Permit::Listed | Permit::First => first.push((*server, *set)),
                    Permit::Refused(why) => {
                        let line = format!(
                            "{} from {}: {why}; left out",
                            self.rrset(key),
                            self.servers.name(*server)
                        );
                        self.warn(line);
                    }
                }
            }
            let recorded = table.owned[slot];
            let Some((owner, stays)) = self.owner(key, recorded, &first) else {
                continue;
            };
            kept[slot] = stays;
            let owned = first.iter().find(|(s, _)| *s == owner).map(|(_, d)| *d);
            for (server, set) in &first {
                if Some(*set) == owned {
                    add(&mut accepted[slot], *server);
                } else {
                    let (s, o) = (self.servers.name(*server), self.servers.name(owner));
                    let line = format!(
                        "{} from {s} differs from that of {o}, which owns it; \
                         left out, {o}'s served",
                        self.rrset(key)
                    );
                    self.warn(line);
                }
            }
            owners[slot] = Some(owner);
        }
        (accepted, owners, kept)
    }

    /// The owner of `key` among its first-publisher servers, and whether
    /// it stays from before: the inventory when it publishes it, the
    /// `recorded` one while it publishes it, else the first in inventory
    /// order (a handover from a recorded owner is reported); none while
    /// the recorded owner's document is not at hand, or when the servers
    /// taking over differ (the others refused, the RRset held).
    fn owner(
        &mut self,
        key: &Key,
        recorded: Option<Srv>,
        first: &[(Srv, &[Rdata])],
    ) -> Option<(Srv, bool)> {
        let (head, _) = first.first()?;
        if first.iter().any(|(s, _)| *s == self.inventory) {
            return Some((self.inventory, true));
        }
        if let Some(r) = recorded {
            if first.iter().any(|(s, _)| *s == r) {
                return Some((r, true));
            }
            let id = self.rrset(key);
            let owner = self.servers.name(r).to_owned();
            if self.unknown.contains(&r) {
                for (server, _) in first {
                    let line = format!(
                        "{id} from {}: owned by {owner}, whose document is not at hand; \
                         left out",
                        self.servers.name(*server)
                    );
                    self.warn(line);
                }
                return None;
            }
            if first.iter().any(|(_, d)| *d != first[0].1) {
                let all: Vec<Srv> = first.iter().map(|(s, _)| *s).collect();
                let line = format!(
                    "{id}: {owner} no longer publishes it and {} publish different data; \
                     held, left out",
                    self.servers.join(&all)
                );
                self.warn(line);
                self.held.insert(id);
                return None;
            }
            let line = format!(
                "{id}: {owner} no longer publishes it; now owned by {}",
                self.servers.name(*head)
            );
            self.notes.push((Kind::Info, line));
        }
        Some((*head, false))
    }

    /// Leaves out CNAMEs and delegations at or above another server's
    /// names, or those names: the RRset that was not already there yields,
    /// the CNAME or delegation when both are new.
    fn structure(&mut self, keys: &[Key], accepted: &mut Accepted, kept: &[bool]) {
        let mut cuts: HashMap<Id, Vec<usize>> = HashMap::new();
        for (slot, key) in keys.iter().enumerate() {
            if (key.1 == "CNAME" || key.1 == "NS") && !accepted[slot].is_empty() {
                cuts.entry(key.0).or_default().push(slot);
            }
        }
        let mut losers: BTreeSet<usize> = BTreeSet::new();
        for (slot, servers) in accepted.iter().enumerate() {
            if servers.is_empty() {
                continue;
            }
            for n in self.names.line(keys[slot].0) {
                for cut in cuts.get(&n).into_iter().flatten().copied() {
                    let theirs = &accepted[cut];
                    if cut == slot || servers.iter().all(|s| theirs.contains(s)) {
                        continue;
                    }
                    let loser = if kept[cut] && !kept[slot] { slot } else { cut };
                    if losers.insert(loser) {
                        let line = self.conflict(keys, loser, cut, slot, accepted);
                        self.notes.push((Kind::Warning, line));
                    }
                }
            }
        }
        for loser in losers {
            accepted[loser].clear();
        }
    }

    /// Lists with `-v` every RRset a server adds at or below a name (or
    /// zone) another server publishes.
    fn nested(&mut self, inputs: &Inputs, keys: &[Key], accepted: &Accepted) {
        let mut at: Vec<Vec<Srv>> = vec![Vec::new(); self.names.text.len()];
        for (server, zs) in inputs {
            let srv = self.servers.id(server);
            for z in zs {
                add(&mut at[self.names.id(&z.name) as usize], srv);
            }
        }
        for (key, servers) in keys.iter().zip(accepted) {
            for s in servers {
                add(&mut at[key.0 as usize], *s);
            }
        }
        for (key, servers) in keys.iter().zip(accepted) {
            for d in self.names.line(key.0) {
                let others: Vec<Srv> = at[d as usize]
                    .iter()
                    .copied()
                    .filter(|s| !servers.contains(s))
                    .collect();
                if !others.is_empty() {
                    for s in servers {
                        let line = format!(
                            "{}: published by {} at or below {}, which {} \
                             publishes; accepted (a zones= list closes this)",
                            self.rrset(key),
                            self.servers.name(*s),
                            self.names.text(d),
                            self.servers.join(&others)
                        );
                        self.notes.push((Kind::Verbose, line));
                    }
                    break;
                }
            }
        }
    }

    /// The sentence for a CNAME or delegation conflict: the loser left out.
    fn conflict(
        &self,
        keys: &[Key],
        loser: usize,
        cut: usize,
        other: usize,
        accepted: &Accepted,
    ) -> String {
        let who = |slot: usize| self.servers.join(&accepted[slot]);
        let (winner, what) = if loser == cut {
            (other, "lies at or above")
        } else {
            (cut, "lies at or below")
        };
        let kind = match keys[winner].1 {
            "NS" => "the delegation ",
            "CNAME" => "the CNAME ",
            _ => "",
        };
        format!(
            "{} from {} {what} {kind}{} from {}; left out, {}'s served",
            self.rrset(&keys[loser]),
            who(loser),
            self.rrset(&keys[winner]),
            who(winner),
            who(winner)
        )
    }

    /// The owners to record: the first-publisher owners of the accepted
    /// RRsets (not the inventory's), and the recorded ones of servers
    /// without a document at hand and of held RRsets.
    fn recorded(&self, keys: &[Key], owners: &[Option<Srv>]) -> Owners {
        let mut rrsets: BTreeMap<String, String> = keys
            .iter()
            .zip(owners)
            .filter_map(|(key, s)| Some((key, (*s).filter(|s| *s != self.inventory)?)))
            .map(|(key, s)| (self.rrset(key), self.servers.name(s).to_owned()))
            .collect();
        for (key, server) in &self.before.rrsets {
            let unknown = self.unknown.contains(&self.servers.id(server));
            if unknown || self.held.contains(key) {
                rrsets.insert(key.clone(), server.clone());
            }
        }
        Owners { rrsets }
    }
}

/// The recorded owners seen from the zone apexes: a zone apex a server
/// newly claims (it owned no name within it) yields to a zone below it
/// that another server owns names in, and to the names of a server whose
/// document is not at hand.
struct Claims {
    /// `(domain, server)` for every domain at or above a name the server
    /// owns.
    owned_under: HashSet<(Id, Srv)>,
    /// By domain, the zone apexes at or below it whose server owns names
    /// within them, with that server.
    owned_zones: HashMap<Id, Vec<(Id, Srv)>>,
    /// The names the servers without a document at hand own, with the
    /// server.
    held: HashMap<Id, Srv>,
}

impl Claims {
    fn new(j: &Judge, inputs: &Inputs) -> Claims {
        let mut owned_under = HashSet::new();
        let mut held = HashMap::new();
        for (key, server) in &j.before.rrsets {
            let name = j.names.id(split_key(key).0);
            let server = j.servers.id(server);
            if j.unknown.contains(&server) {
                held.insert(name, server);
            }
            for d in j.names.line(name) {
                if !owned_under.insert((d, server)) {
                    break;
                }
            }
        }
        let mut owned_zones: HashMap<Id, Vec<(Id, Srv)>> = HashMap::new();
        for (server, zones) in inputs {
            let server = j.servers.id(server);
            for z in zones {
                let apex = j.names.id(&z.name);
                if !owned_under.contains(&(apex, server)) {
                    continue;
                }
                for d in j.names.line(apex).skip(1) {
                    owned_zones.entry(d).or_default().push((apex, server));
                }
            }
        }
        Claims {
            owned_under,
            owned_zones,
            held,
        }
    }

    /// Why `server` may not claim the zone `apex`, if it is a new claim
    /// that may not be made.
    fn refused(&self, j: &Judge, apex: Id, server: Srv) -> Option<String> {
        if server == j.inventory || self.owned_under.contains(&(apex, server)) {
            return None;
        }
        let below = self.owned_zones.get(&apex).into_iter().flatten();
        if let Some((zone, owner)) = below.into_iter().find(|(_, s)| *s != server) {
            return Some(format!(
                "a new zone above the zone {} of {}, which owns names in it",
                j.names.text(*zone),
                j.servers.name(*owner)
            ));
        }
        for n in j.names.line(apex) {
            if let Some(owner) = self.held.get(&n) {
                return Some(format!(
                    "at or below {}, owned by {}, whose document is not at hand",
                    j.names.text(n),
                    j.servers.name(*owner)
                ));
            }
        }
        None
    }
}

/// By slot, the TTL each owned RRset has in its owner's publication,
/// and a zone's (as `<zone> ns`) in that of the owner of its `ns` list.
fn owner_ttls(
    inputs: &Inputs,
    j: &Judge,
    places: &Places,
    owners: &[Option<Srv>],
) -> Vec<Option<u32>> {
    let mut ttls = vec![None; owners.len()];
    for ((server, zones), zone_places) in inputs.iter().zip(places) {
        let server = Some(j.servers.id(server));
        let mut owns = |slot: Slot, ttl: u32| {
            if owners[slot as usize] == server {
                let t = ttls[slot as usize].get_or_insert(ttl);
                *t = (*t).min(ttl);
            }
        };
        for (z, (ns, records)) in zones.iter().zip(zone_places) {
            if let Some(ns) = ns {
                owns(*ns, z.ttl);
            }
            for (r, slot) in z.records.iter().zip(records) {
                owns(*slot, r.ttl);
            }
        }
    }
    ttls
}

/// The inputs with only accepted RRsets, each owned RRset (and zone) with
/// its owner's TTL; a zone whose `ns` list was not accepted keeps its
/// records but does not vote on name servers.
fn filter(
    inputs: Inputs,
    j: &Judge,
    places: &Places,
    accepted: &Accepted,
    owners: &[Option<Srv>],
) -> Inputs {
    let ttls = owner_ttls(&inputs, j, places, owners);
    let ok = |slot: Slot, s: Srv| accepted[slot as usize].contains(&s);
    inputs
        .into_iter()
        .zip(places)
        .map(|((server, zones), zone_places)| {
            let srv = j.servers.id(&server);
            let zones = zones
                .into_iter()
                .zip(zone_places)
                .map(|(mut z, (ns, records))| {
                    let mut slots = records.iter();
                    z.records.retain_mut(|r| {
                        let Some(slot) = slots.next() else {
                            return false;
                        };
                        r.ttl = ttls[*slot as usize].unwrap_or(r.ttl);
                        ok(*slot, srv)
                    });
                    if let Some(ttl) = ns.and_then(|n| ttls[n as usize]) {
                        z.ttl = ttl;
                    }
                    if !ns.is_some_and(|n| ok(n, srv)) {
                        z.ns.clear();
                    }
                    z
                })
                .collect();
            (server, zones)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Record;

    fn zone(name: &str, records: &[(&str, Data)]) -> Zone {
        Zone {
            name: name.into(),
            ttl: 3600,
            ns: vec!["ns1.example.net".into()],
            records: records
                .iter()
                .map(|(owner, data)| Record {
                    owner: (*owner).into(),
                    ttl: 300,
                    data: data.clone(),
                })
                .collect(),
        }
    }

    fn a(last: u8) -> Data {
        Data::A([192, 0, 2, last].into())
    }

    fn input(server: &str, zones: Vec<Zone>) -> (String, Vec<Zone>) {
        (server.to_owned(), zones)
    }

    /// The records each server keeps, as `server owner TYPE`.
    fn kept(j: &Judged) -> Vec<String> {
        let mut v = Vec::new();
        for (server, zones) in &j.inputs {
            for r in zones.iter().flat_map(|z| &z.records) {
                v.push(format!("{server} {} {}", r.owner, r.data.type_name()));
            }
        }
        v
    }

    fn warnings(j: &Judged) -> usize {
        j.notes.iter().filter(|(k, _)| *k == Kind::Warning).count()
    }

    #[test]
    fn the_first_publisher_owns_and_identical_rrsets_combine() {
        let www = "www.example.org";
        let inputs = vec![
            input("web1", vec![zone("example.org", &[(www, a(1))])]),
            input("web2", vec![zone("example.org", &[(www, a(9))])]),
            input("web3", vec![zone("example.org", &[(www, a(1))])]),
        ];
        let j = judge(
            inputs,
            &Lists::new(),
            &Owners::default(),
            &HashSet::new(),
            false,
        );
        assert_eq!(
            kept(&j),
            ["web1 www.example.org A", "web3 www.example.org A"]
        );
        assert_eq!(warnings(&j), 1, "{:?}", j.notes);
        assert_eq!(j.owners.rrsets["www.example.org A"], "web1");

        // web1 stops: web2 takes over, reported; an absent owner keeps it.
        let inputs = vec![input("web2", vec![zone("example.org", &[(www, a(9))])])];
        let after = judge(
            inputs.clone(),
            &Lists::new(),
            &j.owners,
            &HashSet::new(),
            false,
        );
        assert_eq!(kept(&after), ["web2 www.example.org A"]);
        assert!(
            after
                .notes
                .iter()
                .any(|(k, l)| *k == Kind::Info && l.contains("now owned by web2"))
        );
        let unknown = HashSet::from(["web1".to_owned()]);
        let held = judge(inputs, &Lists::new(), &j.owners, &unknown, false);
        assert!(kept(&held).is_empty());
        assert_eq!(held.owners.rrsets["www.example.org A"], "web1");
    }

    #[test]
    fn cnames_and_delegations_yield_to_names_already_there() {
        let before = Owners {
            rrsets: BTreeMap::from([("www.example.org A".to_owned(), "web1".to_owned())]),
        };
        let cname = Data::Cname("evil.example.net".into());
        let inputs = vec![
            input(
                "web1",
                vec![zone("example.org", &[("www.example.org", a(1))])],
            ),
            input(
                "web2",
                vec![zone(
                    "example.org",
                    &[
                        ("www.example.org", cname),
                        ("example.org", Data::Ns("x".into())),
                    ],
                )],
            ),
        ];
        let j = judge(inputs, &Lists::new(), &before, &HashSet::new(), false);
        assert_eq!(kept(&j), ["web1 www.example.org A"]);
        assert_eq!(warnings(&j), 2, "{:?}", j.notes);
    }

    #[test]
    fn listed_servers_combine_and_the_others_are_refused() {
        let lists = Lists::from([
            ("web1".to_owned(), vec!["example.org".to_owned()]),
            ("web2".to_owned(), vec!["example.org".to_owned()]),
        ]);
        let www = "www.example.org";
        let inputs = vec![
            input("web1", vec![zone("example.org", &[(www, a(1))])]),
            input(
                "web2",
                vec![
                    zone("example.org", &[(www, a(2))]),
                    zone("example.com", &[("example.com", a(2))]),
                ],
            ),
            input(
                "mail",
                vec![zone("example.org", &[("new.example.org", a(3))])],
            ),
        ];
        let j = judge(inputs, &lists, &Owners::default(), &HashSet::new(), false);
        assert_eq!(
            kept(&j),
            ["web1 www.example.org A", "web2 www.example.org A"]
        );
        assert_eq!(warnings(&j), 2, "{:?}", j.notes);
        assert!(j.owners.rrsets.is_empty());
    }

    #[test]
    fn zones_entries_are_trimmed_and_reserved_ones_not_listed() {
        let text = "web1.example.net zones=example.org,com,,corp.example.net,example.com\n";
        let inventory = Inventory::parse(text, Path::new("hosts")).expect("inventory");
        let mut notes = Vec::new();
        let lists = lists(&inventory, &["corp.example.net".to_owned()], &mut notes);
        assert_eq!(lists["web1.example.net"], ["example.org", "example.com"]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0]
                .1
                .starts_with("web1.example.net (inventory line 1): zones= \"com\"")
        );
    }

    #[test]
    fn a_missing_owner_keeps_new_zones_off_its_names() {
        let before = Owners {
            rrsets: BTreeMap::from([("www.example.org A".to_owned(), "web1".to_owned())]),
        };
        let inputs = vec![input(
            "web2",
            vec![
                zone("shop.www.example.org", &[("shop.www.example.org", a(2))]),
                zone("example.com", &[("example.com", a(2))]),
            ],
        )];
        let unknown = HashSet::from(["web1".to_owned()]);
        let j = judge(inputs, &Lists::new(), &before, &unknown, false);
        assert_eq!(kept(&j), ["web2 example.com A"]);
        assert_eq!(warnings(&j), 1, "{:?}", j.notes);
        assert_eq!(j.owners.rrsets["www.example.org A"], "web1");
    }

    #[test]
    fn the_inventory_owns_its_names_and_new_types_are_listed() {
        let inputs = vec![
            input(
                "web2",
                vec![zone(
                    "example.net",
                    &[
                        ("web1.example.net", a(66)),
                        (
                            "web1.example.net",
                            Data::Aaaa("2001:db8::66".parse().expect("v6")),
                        ),
                    ],
                )],
            ),
            input(
                INVENTORY,
                vec![zone("example.net", &[("web1.example.net", a(1))])],
            ),
        ];
        let j = judge(
            inputs,
            &Lists::new(),
            &Owners::default(),
            &HashSet::new(),
            false,
        );
        assert_eq!(
            kept(&j),
            ["web2 web1.example.net AAAA", "inventory web1.example.net A"]
        );
        assert_eq!(warnings(&j), 1, "{:?}", j.notes);
        assert!(j.notes.iter().any(|(k, l)| *k == Kind::Verbose
            && l.starts_with("web1.example.net AAAA: published by web2 at or below")));
    }

    #[test]
    fn ns_lists_are_not_judged_when_dns_ns_sets_them() {
        let mut other = zone("example.org", &[]);
        other.ns = vec!["ns.evil.test".into()];
        let inputs = vec![
            input("web1", vec![zone("example.org", &[])]),
            input("web2", vec![other]),
        ];
        let j = judge(
            inputs.clone(),
            &Lists::new(),
            &Owners::default(),
            &HashSet::new(),
            true,
        );
        assert_eq!(warnings(&j), 0, "{:?}", j.notes);
        let j = judge(
            inputs,
            &Lists::new(),
            &Owners::default(),
            &HashSet::new(),
            false,
        );
        assert_eq!(warnings(&j), 1, "{:?}", j.notes);
    }
}
