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
//! - A CNAME or a delegation (an NS record) at or above another
//!   server's names is a conflict; the one that was not already there
//!   yields, and when both are new, the CNAME or delegation does.
//!
//! A conflict is reported naming both servers and the refused RRset left
//! out; the owner's data stays as it was. New names below a domain another
//! server publishes are accepted (Pysk's nested merge) and listed with
//! `-v`: a `zones=` list is how an admin closes that door.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use pysk_common::atomic::{self, Options};
use pysk_common::error::read_err;
use pysk_common::inventory::Inventory;
use pysk_common::report::Kind;

use crate::document::{Data, Zone};
use crate::error::DnsError;
use crate::name::{self, Rule};

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
        let path = path(state_dir);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DnsError::State {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Owners::default()),
            Err(e) => Err(read_err(path)(e).into()),
        }
    }

    /// The owners file's content, as [`Owners::save`] writes it.
    pub fn text(&self) -> Result<String, DnsError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| {
            pysk_common::Error::Internal(format!("the owners do not serialize: {e}"))
        })?;
        text.push('\n');
        Ok(text)
    }

    /// Replaces the owners file atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), DnsError> {
        atomic::replace(
            &path(state_dir),
            self.text()?.as_bytes(),
            Options::default(),
        )?;
        Ok(())
    }
}

/// The inventory's `zones=` lists, by server; a malformed domain is
/// reported and not listed (the server may then publish less, never more).
pub fn lists(inventory: &Inventory, notes: &mut Vec<(Kind, String)>) -> Lists {
    let mut lists = Lists::new();
    for host in &inventory.hosts {
        let Some(text) = host.settings.get("zones") else {
            continue;
        };
        let list = lists.entry(host.name.clone()).or_default();
        for word in text.split(',').filter(|w| !w.is_empty()) {
            match name::absolute(word, Rule::Host, false) {
                Ok(domain) => list.push(domain),
                Err(why) => notes.push((
                    Kind::Warning,
                    format!("{}: zones= {word:?}: {why}; not listed", host.name),
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

/// Judges every server's zones (`inputs` in inventory order) against the
/// lists and the owners `before`. The RRsets of the servers in `unknown`
/// (in the inventory, but without a document at hand) stay theirs.
pub fn judge(inputs: Inputs, lists: &Lists, before: &Owners, unknown: &HashSet<String>) -> Judged {
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
        unknown,
        notes: Vec::new(),
    };
    let inputs = j.zones_allowed(inputs);
    let published = published(&inputs);
    let (mut accepted, owners, kept) = j.rrsets(&published, before);
    j.structure(&mut accepted, &kept);
    j.nested(&inputs, &accepted);
    let mut owners = Owners {
        rrsets: owners
            .into_iter()
            .filter(|(k, _)| accepted.contains_key(k))
            .map(|((n, t), s)| (format!("{n} {t}"), s))
            .collect(),
    };
    for (key, server) in &before.rrsets {
        if unknown.contains(server) {
            owners.rrsets.insert(key.clone(), server.clone());
        }
    }
    Judged {
        inputs: filter(inputs, &accepted),
        owners,
        notes: j.notes,
    }
}

struct Judge<'a> {
    lists: &'a Lists,
    /// The servers listing each listed domain, in server order.
    claimed: HashMap<&'a str, Vec<&'a str>>,
    unknown: &'a HashSet<String>,
    notes: Vec<(Kind, String)>,
}

/// Every RRset published, with each publisher's data in inventory order.
type Published = BTreeMap<Key, Vec<(String, BTreeSet<Data>)>>;

/// Every RRset in `inputs`, the zones' `ns` lists as `<zone> ns`.
fn published(inputs: &Inputs) -> Published {
    let mut by_key: BTreeMap<Key, Vec<(String, BTreeSet<Data>)>> = BTreeMap::new();
    for (server, zones) in inputs {
        let mut mine: BTreeMap<Key, BTreeSet<Data>> = BTreeMap::new();
        for z in zones {
            for r in &z.records {
                let key = (r.owner.clone(), r.data.type_name());
                mine.entry(key).or_default().insert(r.data.clone());
            }
            if !z.ns.is_empty() {
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

    /// The zones each server may publish at all (their apex permitted).
    fn zones_allowed(&mut self, inputs: Inputs) -> Inputs {
        let mut out = Vec::new();
        for (server, zones) in inputs {
            let mut kept = Vec::new();
            for z in zones {
                if let Permit::Refused(why) = self.permit(&z.name, &server) {
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
    fn rrsets(
        &mut self,
        published: &Published,
        before: &Owners,
    ) -> (Accepted, BTreeMap<Key, String>, HashSet<Key>) {
        let mut accepted = Accepted::new();
        let mut owners = BTreeMap::new();
        let mut kept = HashSet::new();
        for (key, publishers) in published {
            let mut first = Vec::new();
            for (server, set) in publishers {
                match self.permit(&key.0, server) {
                    Permit::Listed => {
                        accepted
                            .entry(key.clone())
                            .or_default()
                            .insert(server.clone());
                    }
                    Permit::First => first.push((server, set)),
                    Permit::Refused(why) => self.warn(format!(
                        "{} {} from {server}: {why}; left out",
                        key.0, key.1
                    )),
                }
            }
            let Some(owner) = self.owner(key, &first, before, &mut kept) else {
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

    /// The owner of `key` among its first-publisher servers: the recorded
    /// one while it publishes it, else the first in inventory order (a
    /// handover from a recorded owner is reported); none while the
    /// recorded owner's document is not at hand (the others refused).
    fn owner(
        &mut self,
        key: &Key,
        first: &[(&String, &BTreeSet<Data>)],
        before: &Owners,
        kept: &mut HashSet<Key>,
    ) -> Option<String> {
        let (head, _) = first.first()?;
        let recorded = before.rrsets.get(&format!("{} {}", key.0, key.1));
        if let Some(r) = recorded {
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

    /// Lists with `-v` the names a server publishes below a zone of
    /// another server, where no other server publishes.
    fn nested(&mut self, inputs: &Inputs, accepted: &Accepted) {
        let mut zones: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (server, zs) in inputs {
            for z in zs {
                zones.entry(z.name.as_str()).or_default().insert(server);
            }
        }
        let mut at: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for ((n, _), servers) in accepted {
            at.entry(n)
                .or_default()
                .extend(servers.iter().map(String::as_str));
        }
        for (n, servers) in at {
            let [server] = servers.iter().copied().collect::<Vec<_>>()[..] else {
                continue;
            };
            let mut cur = Some(n);
            while let Some(d) = cur {
                let others: Vec<&str> = zones
                    .get(d)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|s| *s != server)
                    .collect();
                if !others.is_empty() {
                    self.notes.push((
                        Kind::Verbose,
                        format!(
                            "{n}: published by {server} below {d}, which {} publishes; \
                             accepted (a zones= list closes this)",
                            others.join(", ")
                        ),
                    ));
                    break;
                }
                cur = name::parent(d);
            }
        }
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

/// The inputs with only accepted RRsets; a zone whose `ns` list was not
/// accepted keeps its records but does not vote on name servers.
fn filter(inputs: Inputs, accepted: &Accepted) -> Inputs {
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
        let j = judge(inputs, &Lists::new(), &Owners::default(), &HashSet::new());
        assert_eq!(
            kept(&j),
            ["web1 www.example.org A", "web3 www.example.org A"]
        );
        assert_eq!(warnings(&j), 1, "{:?}", j.notes);
        assert_eq!(j.owners.rrsets["www.example.org A"], "web1");

        // web1 stops: web2 takes over, reported; an absent owner keeps it.
        let inputs = vec![input("web2", vec![zone("example.org", &[(www, a(9))])])];
        let after = judge(inputs.clone(), &Lists::new(), &j.owners, &HashSet::new());
        assert_eq!(kept(&after), ["web2 www.example.org A"]);
        assert!(
            after
                .notes
                .iter()
                .any(|(k, l)| *k == Kind::Info && l.contains("now owned by web2"))
        );
        let unknown = HashSet::from(["web1".to_owned()]);
        let held = judge(inputs, &Lists::new(), &j.owners, &unknown);
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
        let j = judge(inputs, &Lists::new(), &before, &HashSet::new());
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
        let j = judge(inputs, &lists, &Owners::default(), &HashSet::new());
        assert_eq!(
            kept(&j),
            ["web1 www.example.org A", "web2 www.example.org A"]
        );
        assert_eq!(warnings(&j), 2, "{:?}", j.notes);
        assert!(j.owners.rrsets.is_empty());
    }
}
