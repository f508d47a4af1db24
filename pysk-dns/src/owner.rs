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

/// One RRset: owner name and type.
type Key = (String, &'static str);

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
    let mut claimed: HashMap<&str, Vec<&str>> = HashMap::new();
    for (server, list) in lists {
        for domain in list {
            let holders = claimed.entry(domain).or_default();
            if !holders.contains(&server.as_str()) {
                holders.push(server);
            }
        }
    }
    let mut j = Judge {
        lists,
        claimed,
        before,
        unknown,
        held: HashSet::new(),
        notes: Vec::new(),
    };
    let inputs = j.zones_allowed(inputs);
    let published = published(&inputs, ns_fixed);
    let (mut accepted, owners, kept) = j.rrsets(&published);
    j.structure(&mut accepted, &kept);
    j.nested(&inputs, &accepted);
    let owners: BTreeMap<Key, String> = owners
        .into_iter()
        .filter(|(k, _)| accepted.contains_key(k))
        .collect();
    let mut recorded = Owners {
        rrsets: owners
            .iter()
            .filter(|(_, s)| *s != INVENTORY)
            .map(|((n, t), s)| (format!("{n} {t}"), s.clone()))
            .collect(),
    };
    for (key, server) in &before.rrsets {
        if unknown.contains(server) || j.held.contains(key) {
            recorded.rrsets.insert(key.clone(), server.clone());
        }
    }
    Judged {
        inputs: filter(inputs, &accepted, &owners),
        owners: recorded,
        notes: j.notes,
    }
}

struct Judge<'a> {
    lists: &'a Lists,
    /// The servers listing each listed domain, in server order.
    claimed: HashMap<&'a str, Vec<&'a str>>,
    before: &'a Owners,
    unknown: &'a HashSet<String>,
    /// The RRsets (`"<name> <TYPE>"`) held for their recorded owner.
    held: HashSet<String>,
    notes: Vec<(Kind, String)>,
}

/// Every RRset published, with each publisher's data in inventory order.
type Published = BTreeMap<Key, Vec<(String, BTreeSet<Data>)>>;

/// Every RRset in `inputs`, the zones' `ns` lists as `<zone> ns` unless
/// `ns_fixed`.
fn published(inputs: &Inputs, ns_fixed: bool) -> Published {
    let mut by_key: BTreeMap<Key, Vec<(String, BTreeSet<Data>)>> = BTreeMap::new();
    for (server, zones) in inputs {
        let mut mine: BTreeMap<Key, BTreeSet<Data>> = BTreeMap::new();
        for z in zones {
            for r in &z.records {
                let key = (r.owner.clone(), r.data.type_name());
                mine.entry(key).or_default().insert(r.data.clone());
            }
            if !ns_fixed && !z.ns.is_empty() {
                let set = z.ns.iter().map(|n| Data::Ns(n.clone())).collect();
                mine.insert((z.name.clone(), "ns"), set);
            }
        }
        for (key, set) in mine {
            by_key.entry(key).or_default().push((server.clone(), set));
        }
    }
    by_key
}

/// The servers allowed each RRset.
type Accepted = BTreeMap<Key, BTreeSet<String>>;

impl Judge<'_> {
    fn warn(&mut self, line: String) {
        self.notes.push((Kind::Warning, line));
    }

    /// What `server` may do at `name`.
    fn permit(&self, name: &str, server: &str) -> Permit {
        if server == INVENTORY {
            return Permit::First;
        }
        let mut cur = Some(name);
        while let Some(n) = cur {
            if let Some(holders) = self.claimed.get(n) {
                return if holders.contains(&server) {
                    Permit::Listed
                } else {
                    Permit::Refused(format!("{n} is given to {} by zones=", holders.join(", ")))
                };
            }
            cur = name::parent(n);
        }
        if self.lists.contains_key(server) {
            Permit::Refused("outside its zones= list".to_owned())
        } else {
            Permit::First
        }
    }

    /// The zones each server may publish at all: their apex permitted,
    /// and a new claim not above another server's zone (see [`Claims`]).
    fn zones_allowed(&mut self, inputs: Inputs) -> Inputs {
        let claims = Claims::new(&inputs, self.before, self.unknown);
        let mut out = Vec::new();
        for (server, zones) in inputs {
            let mut kept = Vec::new();
            for z in zones {
                let why = match self.permit(&z.name, &server) {
                    Permit::Refused(why) => Some(why),
                    Permit::Listed => None,
                    Permit::First => claims.refused(&z.name, &server),
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
    /// owners, and the RRsets whose owner stays from `before`.
    fn rrsets(&mut self, published: &Published) -> (Accepted, BTreeMap<Key, String>, HashSet<Key>) {
        let mut accepted = Accepted::new();
        let mut owners = BTreeMap::new();
        let mut kept = HashSet::new();
        for (key, publishers) in published {
            let mut first = Vec::new();
            let inventory = publishers.iter().any(|(s, _)| s == INVENTORY);
            for (server, set) in publishers {
                match self.permit(&key.0, server) {
                    Permit::Listed if !inventory => {
                        accepted
                            .entry(key.clone())
                            .or_default()
                            .insert(server.clone());
                    }
                    Permit::Listed | Permit::First => first.push((server, set)),
                    Permit::Refused(why) => self.warn(format!(
                        "{} {} from {server}: {why}; left out",
                        key.0, key.1
                    )),
                }
            }
            let Some(owner) = self.owner(key, &first, &mut kept) else {
                continue;
            };
            let owned = first.iter().find(|(s, _)| **s == owner).map(|(_, d)| *d);
            for (server, set) in &first {
                if Some(*set) == owned {
                    accepted
                        .entry(key.clone())
                        .or_default()
                        .insert((*server).clone());
                } else {
                    self.warn(format!(
                        "{} {} from {server} differs from that of {owner}, which owns it; \
                         left out, {owner}'s served",
                        key.0, key.1
                    ));
                }
            }
            owners.insert(key.clone(), owner);
        }
        (accepted, owners, kept)
    }

    /// The owner of `key` among its first-publisher servers: the
    /// inventory when it publishes it, the recorded one while it publishes
    /// it, else the first in inventory order (a handover from a recorded
    /// owner is reported); none while the recorded owner's document is not
    /// at hand, or when the servers taking over differ (the others
    /// refused, the RRset held).
    fn owner(
        &mut self,
        key: &Key,
        first: &[(&String, &BTreeSet<Data>)],
        kept: &mut HashSet<Key>,
    ) -> Option<String> {
        let (head, _) = first.first()?;
        if first.iter().any(|(s, _)| *s == INVENTORY) {
            kept.insert(key.clone());
            return Some(INVENTORY.to_owned());
        }
        let id = format!("{} {}", key.0, key.1);
        if let Some(r) = self.before.rrsets.get(&id) {
            if first.iter().any(|(s, _)| *s == r) {
                kept.insert(key.clone());
                return Some(r.clone());
            }
            if self.unknown.contains(r) {
                for (server, _) in first {
                    self.warn(format!(
                        "{} {} from {server}: owned by {r}, whose document is not at hand; \
                         left out",
                        key.0, key.1
                    ));
                }
                return None;
            }
            if first.iter().any(|(_, d)| *d != first[0].1) {
                let all: Vec<&str> = first.iter().map(|(s, _)| s.as_str()).collect();
                self.warn(format!(
                    "{id}: {r} no longer publishes it and {} publish different data; \
                     held, left out",
                    all.join(", ")
                ));
                self.held.insert(id);
                return None;
            }
            self.notes.push((
                Kind::Info,
                format!(
                    "{} {}: {r} no longer publishes it; now owned by {head}",
                    key.0, key.1
                ),
            ));
        }
        Some((*head).clone())
    }

    /// Leaves out CNAMEs and delegations at or above another server's
    /// names, or those names: the RRset that was not already there yields,
    /// the CNAME or delegation when both are new.
    fn structure(&mut self, accepted: &mut Accepted, kept: &HashSet<Key>) {
        let mut cuts: HashMap<&str, Vec<&Key>> = HashMap::new();
        for key in accepted.keys() {
            if key.1 == "CNAME" || key.1 == "NS" {
                cuts.entry(key.0.as_str()).or_default().push(key);
            }
        }
        let mut losers: BTreeSet<Key> = BTreeSet::new();
        for (key, servers) in accepted.iter() {
            let mut cur = Some(key.0.as_str());
            while let Some(n) = cur {
                for cut in cuts.get(n).into_iter().flatten() {
                    let theirs = &accepted[*cut];
                    if *cut == key || servers.is_subset(theirs) {
                        continue;
                    }
                    let loser = if kept.contains(*cut) && !kept.contains(key) {
                        key
                    } else {
                        *cut
                    };
                    if losers.insert(loser.clone()) {
                        self.notes
                            .push((Kind::Warning, conflict(loser, cut, key, accepted)));
                    }
                }
                cur = name::parent(n);
            }
        }
        accepted.retain(|k, _| !losers.contains(k));
    }

    /// Lists with `-v` every RRset a server adds at or below a name (or
    /// zone) another server publishes.
    fn nested(&mut self, inputs: &Inputs, accepted: &Accepted) {
        let mut at: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (server, zs) in inputs {
            for z in zs {
                at.entry(z.name.as_str()).or_default().insert(server);
            }
        }
        for ((n, _), servers) in accepted {
            at.entry(n)
                .or_default()
                .extend(servers.iter().map(String::as_str));
        }
        for ((n, t), servers) in accepted {
            let mut cur = Some(n.as_str());
            while let Some(d) = cur {
                let others: Vec<&str> = at
                    .get(d)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|s| !servers.contains(*s))
                    .collect();
                if !others.is_empty() {
                    for s in servers {
                        self.notes.push((
                            Kind::Verbose,
                            format!(
                                "{n} {t}: published by {s} at or below {d}, which {} \
                                 publishes; accepted (a zones= list closes this)",
                                others.join(", ")
                            ),
                        ));
                    }
                    break;
                }
                cur = name::parent(d);
            }
        }
    }
}

/// The recorded owners seen from the zone apexes: a zone apex a server
/// newly claims (it owned no name within it) yields to a zone below it
/// that another server owns names in, and to the names of a server whose
/// document is not at hand.
struct Claims {
    /// `(domain, server)` for every domain at or above a name the server
    /// owns.
    owned_under: HashSet<(String, String)>,
    /// By domain, the zone apexes at or below it whose server owns names
    /// within them, with that server.
    owned_zones: HashMap<String, Vec<(String, String)>>,
    /// The names the servers without a document at hand own, with the
    /// server.
    held: HashMap<String, String>,
}

impl Claims {
    fn new(inputs: &Inputs, before: &Owners, unknown: &HashSet<String>) -> Claims {
        let mut owned_under = HashSet::new();
        let mut held = HashMap::new();
        for (key, server) in &before.rrsets {
            let name = key.rsplit_once(' ').map_or(key.as_str(), |(n, _)| n);
            if unknown.contains(server) {
                held.insert(name.to_owned(), server.clone());
            }
            let mut cur = Some(name);
            while let Some(d) = cur {
                owned_under.insert((d.to_owned(), server.clone()));
                cur = name::parent(d);
            }
        }
        let mut owned_zones: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (server, zones) in inputs {
            for z in zones {
                if !owned_under.contains(&(z.name.clone(), server.clone())) {
                    continue;
                }
                let mut cur = name::parent(&z.name);
                while let Some(d) = cur {
                    let entry = (z.name.clone(), server.clone());
                    owned_zones.entry(d.to_owned()).or_default().push(entry);
                    cur = name::parent(d);
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
    fn refused(&self, apex: &str, server: &str) -> Option<String> {
        if server == INVENTORY
            || self
                .owned_under
                .contains(&(apex.to_owned(), server.to_owned()))
        {
            return None;
        }
        let below = self.owned_zones.get(apex).into_iter().flatten();
        if let Some((zone, owner)) = below.into_iter().find(|(_, s)| s != server) {
            return Some(format!(
                "a new zone above the zone {zone} of {owner}, which owns names in it"
            ));
        }
        let mut cur = Some(apex);
        while let Some(n) = cur {
            if let Some(owner) = self.held.get(n) {
                return Some(format!(
                    "at or below {n}, owned by {owner}, whose document is not at hand"
                ));
            }
            cur = name::parent(n);
        }
        None
    }
}

/// The sentence for a CNAME or delegation conflict: the loser left out.
fn conflict(loser: &Key, cut: &Key, other: &Key, accepted: &Accepted) -> String {
    let who = |k: &Key| accepted[k].iter().cloned().collect::<Vec<_>>().join(", ");
    let (winner, what) = if loser == cut {
        (other, "lies at or above")
    } else {
        (cut, "lies at or below")
    };
    let kind = match winner.1 {
        "NS" => "the delegation ",
        "CNAME" => "the CNAME ",
        _ => "",
    };
    format!(
        "{} {} from {} {what} {kind}{} {} from {}; left out, {}'s served",
        loser.0,
        loser.1,
        who(loser),
        winner.0,
        winner.1,
        who(winner),
        who(winner)
    )
}

/// The TTL each owned RRset has in its owner's publication, and a zone's
/// (as `<zone> ns`) in that of the owner of its `ns` list.
fn owner_ttls(inputs: &Inputs, owners: &BTreeMap<Key, String>) -> HashMap<Key, u32> {
    let mut ttls: HashMap<Key, u32> = HashMap::new();
    for (server, zones) in inputs {
        let mut owns = |key: Key, ttl: u32| {
            if owners.get(&key) == Some(server) {
                let t = ttls.entry(key).or_insert(ttl);
                *t = (*t).min(ttl);
            }
        };
        for z in zones {
            owns((z.name.clone(), "ns"), z.ttl);
            for r in &z.records {
                owns((r.owner.clone(), r.data.type_name()), r.ttl);
            }
        }
    }
    ttls
}

/// The inputs with only accepted RRsets, each owned RRset (and zone) with
/// its owner's TTL; a zone whose `ns` list was not accepted keeps its
/// records but does not vote on name servers.
fn filter(inputs: Inputs, accepted: &Accepted, owners: &BTreeMap<Key, String>) -> Inputs {
    let ttls = owner_ttls(&inputs, owners);
    let ok = |n: &str, t: &'static str, s: &str| {
        accepted
            .get(&(n.to_owned(), t))
            .is_some_and(|set| set.contains(s))
    };
    inputs
        .into_iter()
        .map(|(server, zones)| {
            let zones = zones
                .into_iter()
                .map(|mut z| {
                    z.records
                        .retain(|r| ok(&r.owner, r.data.type_name(), &server));
                    for r in &mut z.records {
                        let key = (r.owner.clone(), r.data.type_name());
                        r.ttl = ttls.get(&key).copied().unwrap_or(r.ttl);
                    }
                    if let Some(ttl) = ttls.get(&(z.name.clone(), "ns")) {
                        z.ttl = *ttl;
                    }
                    if !ok(&z.name, "ns", &server) {
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
