//! Assembling zones from every server's validated zones.
//!
//! A domain that lies inside another domain present becomes part of that
//! zone's file (written under its own `$ORIGIN`), as Pysk appended a
//! subdomain served elsewhere into its parent. Records for one zone from
//! several servers are combined, identical ones deduplicated, each tagged
//! with the servers it came from. Conflicts are reported naming the
//! servers on both sides, and only the conflicting records are left out.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::document::{Data, Record, Zone};
use crate::name;

/// One zone file's worth of records, ready to be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The zone (the file's `$ORIGIN` and the include's name).
    pub name: String,
    /// The default TTL (`$TTL`): the lowest the zone's servers give.
    pub ttl: u32,
    /// The zone's name servers, in canonical order.
    pub ns: Vec<String>,
    /// The servers the name servers came from.
    pub ns_servers: Vec<String>,
    /// Every server that contributed to the file.
    pub servers: Vec<String>,
    /// The records, ordered by section, then owner, then type and data.
    pub records: Vec<Entry>,
    /// Conflicts found in it, one sentence each.
    pub conflicts: Vec<String>,
}

impl Assembled {
    /// Why the zone cannot be written, if it cannot: a zone needs name
    /// servers.
    pub fn invalid(&self) -> Option<String> {
        if self.ns.is_empty() {
            Some("no name servers (none given, or the servers disagree on all of them)".to_owned())
        } else {
            None
        }
    }
}

/// One record in an assembled zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The domain it is written under (`$ORIGIN`): the deepest domain of
    /// the file that holds its owner.
    pub section: String,
    /// The absolute owner.
    pub owner: String,
    /// The RRset's TTL.
    pub ttl: u32,
    /// Type and data.
    pub data: Data,
    /// The servers that gave it.
    pub servers: Vec<String>,
}

/// What every zone gets regardless of the documents.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Name servers for every zone (the central name servers); when empty
    /// the documents' `ns` lists are used.
    pub ns: Vec<String>,
}

/// Assembles the zone files from `(server, zones)` pairs. The result is
/// ordered by zone name and does not depend on the order of `inputs`.
pub fn assemble(inputs: &[(String, Vec<Zone>)], policy: &Policy) -> Vec<Assembled> {
    let mut domains: Domains = BTreeMap::new();
    for (server, zones) in inputs {
        for z in zones {
            domains.entry(&z.name).or_default().push((server, z));
        }
    }
    for list in domains.values_mut() {
        list.sort_by_key(|(server, _)| *server);
    }
    let present: HashSet<&str> = domains.keys().copied().collect();
    let mut files: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for &domain in domains.keys() {
        let mut top = domain;
        let mut cur = domain;
        while let Some(p) = name::parent(cur) {
            if present.contains(p) {
                top = p;
            }
            cur = p;
        }
        files.entry(top).or_default().push(domain);
    }
    files
        .into_iter()
        .map(|(apex, members)| assemble_one(apex, &members, &domains, policy))
        .collect()
}

/// The servers' zones of each domain, by domain, each list in server
/// order.
type Domains<'a> = BTreeMap<&'a str, Vec<(&'a str, &'a Zone)>>;

/// One zone file: the domain `apex` with the domains inside it present
/// (`members`, the apex included), assembled in named steps: the TTL and
/// name servers from the apex's documents, the records of every member
/// combined, the conflicting ones left out, the rest in file order.
fn assemble_one(apex: &str, members: &[&str], domains: &Domains, policy: &Policy) -> Assembled {
    let mut conflicts = Vec::new();
    let apex_docs = docs_of(domains, apex);
    let ttl = apex_docs
        .iter()
        .map(|(_, z)| z.ttl)
        .min()
        .unwrap_or(crate::document::DEFAULT_TTL);
    let (ns, ns_servers) = name_servers(apex, apex_docs, policy, &mut conflicts);
    let (mut by_owner, servers) = combine(members, domains);
    drop_below_delegations(apex, &mut by_owner, &mut conflicts);
    drop_cname_conflicts(apex, &mut by_owner, &mut conflicts);
    Assembled {
        name: apex.to_owned(),
        ttl,
        ns,
        ns_servers,
        servers: servers.into_iter().map(str::to_owned).collect(),
        records: entries(apex, members, by_owner, ttl),
        conflicts,
    }
}

/// The servers' zones of `domain` (none when no server has it).
fn docs_of<'m, 'a>(domains: &'m Domains<'a>, domain: &str) -> &'m [(&'a str, &'a Zone)] {
    domains.get(domain).map(Vec::as_slice).unwrap_or_default()
}

/// The records of every member domain by owner, identical `(owner, data)`
/// from several servers combined into one with the lowest TTL and the
/// servers that gave it (each owner's list in data order), and every
/// server that contributed.
fn combine<'a>(members: &[&str], domains: &Domains<'a>) -> (ByOwner<'a>, BTreeSet<&'a str>) {
    let mut combined: HashMap<(&str, &Data), (u32, BTreeSet<&str>)> = HashMap::new();
    let mut servers = BTreeSet::new();
    for domain in members {
        for (server, zone) in docs_of(domains, domain) {
            servers.insert(*server);
            for Record { owner, ttl, data } in &zone.records {
                let e = combined
                    .entry((owner, data))
                    .or_insert((*ttl, BTreeSet::new()));
                e.0 = e.0.min(*ttl);
                e.1.insert(server);
            }
        }
    }
    let mut by_owner: ByOwner = BTreeMap::new();
    for ((owner, data), (ttl, srv)) in combined {
        by_owner.entry(owner).or_default().push((data, ttl, srv));
    }
    for list in by_owner.values_mut() {
        list.sort_by(|a, b| a.0.cmp(b.0));
    }
    (by_owner, servers)
}

/// The records left in `by_owner` as the file's entries, each under the
/// deepest member domain that holds it, with one TTL per RRset, in file
/// order: the apex's section first, then the other sections, each by
/// owner and data in canonical order.
fn entries(apex: &str, members: &[&str], by_owner: ByOwner, ttl: u32) -> Vec<Entry> {
    let member_set: HashSet<&str> = members.iter().copied().collect();
    let mut records = Vec::new();
    for (owner, list) in by_owner {
        let section = section_of(owner, &member_set).unwrap_or(apex);
        let rrset_ttl = rrset_ttls(&list);
        for (data, _, srv) in list {
            records.push(Entry {
                section: section.to_owned(),
                owner: owner.to_owned(),
                ttl: rrset_ttl.get(data.type_name()).copied().unwrap_or(ttl),
                data: data.clone(),
                servers: srv.into_iter().map(str::to_owned).collect(),
            });
        }
    }
    records.sort_by(|a, b| {
        (a.section != apex)
            .cmp(&(b.section != apex))
            .then_with(|| name::canonical_cmp(&a.section, &b.section))
            .then_with(|| name::canonical_cmp(&a.owner, &b.owner))
            .then_with(|| a.data.cmp(&b.data))
    });
    records
}

/// One TTL per RRset of an owner's records: the lowest any server asked
/// for, by type.
fn rrset_ttls<'a>(list: &[(&'a Data, u32, BTreeSet<&str>)]) -> HashMap<&'a str, u32> {
    let mut rrset_ttl: HashMap<&str, u32> = HashMap::new();
    for (data, ttl, _) in list {
        let t = rrset_ttl.entry(data.type_name()).or_insert(*ttl);
        *t = (*t).min(*ttl);
    }
    rrset_ttl
}

/// The zone's name servers: the policy's, or those the apex documents
/// agree on. Documents without `ns` do not vote; when the others
/// disagree, the conflict is reported and only the name servers every one
/// of them gives are kept.
fn name_servers(
    apex: &str,
    docs: &[(&str, &Zone)],
    policy: &Policy,
    conflicts: &mut Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let sort = |mut v: Vec<String>| {
        v.sort_by(|a, b| name::canonical_cmp(a, b));
        v.dedup();
        v
    };
    if !policy.ns.is_empty() {
        return (sort(policy.ns.clone()), vec!["dns_ns".to_owned()]);
    }
    let voters: Vec<(&str, BTreeSet<&str>)> = docs
        .iter()
        .filter(|(_, z)| !z.ns.is_empty())
        .map(|(s, z)| (*s, z.ns.iter().map(String::as_str).collect()))
        .collect();
    let Some((first_server, first)) = voters.first() else {
        return (Vec::new(), Vec::new());
    };
    let mut agreed = first.clone();
    for (server, set) in &voters[1..] {
        if set != first {
            conflicts.push(format!(
                "{apex}: {first_server} gives the name servers {} but {server} gives {}; \
                 only those both give are written",
                list(first),
                list(set)
            ));
        }
        agreed = agreed.intersection(set).copied().collect();
    }
    let servers = voters.iter().map(|(s, _)| (*s).to_owned()).collect();
    (
        sort(agreed.into_iter().map(str::to_owned).collect()),
        servers,
    )
}

fn list(set: &BTreeSet<&str>) -> String {
    let v: Vec<String> = set.iter().map(|n| name::fqdn(n)).collect();
    v.join(" ")
}

type ByOwner<'a> = BTreeMap<&'a str, Vec<(&'a Data, u32, BTreeSet<&'a str>)>>;

fn servers_of<'a>(entries: impl Iterator<Item = &'a BTreeSet<&'a str>>) -> String {
    let all: BTreeSet<&str> = entries.flat_map(|s| s.iter().copied()).collect();
    all.into_iter().collect::<Vec<_>>().join(", ")
}

/// Leaves out records at or below a delegation (an NS record below the
/// apex), except the delegation's NS records themselves and the glue
/// addresses of the name servers it names.
fn drop_below_delegations(apex: &str, by_owner: &mut ByOwner, conflicts: &mut Vec<String>) {
    let mut cuts: HashMap<&str, (BTreeSet<&str>, String)> = HashMap::new();
    for (owner, list) in by_owner.iter() {
        let targets: BTreeSet<&str> = list
            .iter()
            .filter_map(|(d, _, _)| match d {
                Data::Ns(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        if !targets.is_empty() && *owner != apex {
            let who = servers_of(
                list.iter()
                    .filter(|(d, _, _)| matches!(d, Data::Ns(_)))
                    .map(|(_, _, s)| s),
            );
            cuts.insert(owner, (targets, who));
        }
    }
    if cuts.is_empty() {
        return;
    }
    for (owner, list) in by_owner.iter_mut() {
        let mut cut = None;
        let mut cur = Some(*owner);
        while let Some(n) = cur {
            if n == apex {
                break;
            }
            if let Some(c) = cuts.get(n) {
                cut = Some((n, c));
            }
            cur = name::parent(n);
        }
        let Some((at, (targets, who))) = cut else {
            continue;
        };
        list.retain(|(data, _, servers)| {
            let allowed = match data {
                Data::Ns(_) => *owner == at,
                Data::A(_) | Data::Aaaa(_) => targets.contains(owner),
                _ => false,
            };
            if !allowed {
                conflicts.push(format!(
                    "{apex}: {owner} {} from {} lies at or below the delegation {at} from {who}; \
                     left out",
                    data.type_name(),
                    servers_of(std::iter::once(servers)),
                ));
            }
            allowed
        });
    }
    by_owner.retain(|_, list| !list.is_empty());
}

/// Leaves out every record at a name that has a CNAME beside other data,
/// or two different CNAMEs.
fn drop_cname_conflicts(apex: &str, by_owner: &mut ByOwner, conflicts: &mut Vec<String>) {
    by_owner.retain(|owner, list| {
        let (cnames, others): (Vec<_>, Vec<_>) = list
            .iter()
            .partition(|(d, _, _)| matches!(d, Data::Cname(_)));
        if cnames.is_empty() || (cnames.len() == 1 && others.is_empty()) {
            return true;
        }
        let what = if others.is_empty() {
            "another CNAME".to_owned()
        } else {
            let types: BTreeSet<&str> = others.iter().map(|(d, _, _)| d.type_name()).collect();
            format!(
                "{} from {}",
                types.into_iter().collect::<Vec<_>>().join(", "),
                servers_of(others.iter().map(|(_, _, s)| s))
            )
        };
        conflicts.push(format!(
            "{apex}: {owner} has a CNAME from {} beside {what}; all its records left out",
            servers_of(cnames.iter().map(|(_, _, s)| s)),
        ));
        false
    });
}

/// The deepest member domain that holds `owner`.
fn section_of<'a>(owner: &'a str, members: &HashSet<&str>) -> Option<&'a str> {
    let mut cur = Some(owner);
    while let Some(n) = cur {
        if members.contains(n) {
            return Some(n);
        }
        cur = name::parent(n);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Record;

    fn zone(name: &str, ns: &[&str], records: Vec<(&str, Data)>) -> Zone {
        Zone {
            name: name.into(),
            ttl: 3600,
            ns: ns.iter().map(|s| (*s).to_owned()).collect(),
            records: records
                .into_iter()
                .map(|(owner, data)| Record {
                    owner: owner.into(),
                    ttl: 300,
                    data,
                })
                .collect(),
        }
    }

    fn a(last: u8) -> Data {
        Data::A([192, 0, 2, last].into())
    }

    #[test]
    fn nested_domains_join_their_parent_and_duplicates_merge() {
        let inputs = vec![
            (
                "web1".to_owned(),
                vec![zone(
                    "example.org",
                    &["ns1.example.net"],
                    vec![("www.example.org", a(1))],
                )],
            ),
            (
                "web2".to_owned(),
                vec![
                    zone(
                        "shop.example.org",
                        &["ns9.example.net"],
                        vec![("shop.example.org", a(2))],
                    ),
                    zone(
                        "example.org",
                        &["ns1.example.net"],
                        vec![("www.example.org", a(1))],
                    ),
                ],
            ),
        ];
        let zones = assemble(&inputs, &Policy::default());
        assert_eq!(zones.len(), 1);
        let z = &zones[0];
        assert_eq!(z.ns, ["ns1.example.net"]);
        assert!(z.conflicts.is_empty(), "{:?}", z.conflicts);
        assert_eq!(z.records.len(), 2);
        assert_eq!(z.records[0].servers, ["web1", "web2"]);
        assert_eq!(z.records[1].section, "shop.example.org");
        assert_eq!(z.records[1].servers, ["web2"]);
    }

    #[test]
    fn conflicts_leave_out_only_the_conflicting_records() {
        let inputs = vec![
            (
                "web1".to_owned(),
                vec![zone(
                    "example.org",
                    &["ns1.example.net", "ns2.example.net"],
                    vec![
                        ("www.example.org", Data::Cname("example.net".into())),
                        ("ok.example.org", a(9)),
                        ("sub.example.org", Data::Ns("ns.sub.example.org".into())),
                        ("ns.sub.example.org", a(3)),
                    ],
                )],
            ),
            (
                "web2".to_owned(),
                vec![zone(
                    "example.org",
                    &["ns1.example.net"],
                    vec![("www.example.org", a(1)), ("x.sub.example.org", a(4))],
                )],
            ),
        ];
        let z = &assemble(&inputs, &Policy::default())[0];
        assert_eq!(z.ns, ["ns1.example.net"], "only the agreed name server");
        let owners: Vec<&str> = z.records.iter().map(|e| e.owner.as_str()).collect();
        assert_eq!(
            owners,
            ["ok.example.org", "sub.example.org", "ns.sub.example.org"]
        );
        assert_eq!(z.conflicts.len(), 3, "{:#?}", z.conflicts);
        assert!(
            z.conflicts
                .iter()
                .any(|c| c.contains("web1") && c.contains("web2") && c.contains("CNAME"))
        );
        assert!(
            z.conflicts
                .iter()
                .any(|c| c.contains("x.sub.example.org") && c.contains("delegation"))
        );
    }

    #[test]
    fn rrsets_get_one_ttl() {
        let mut z1 = zone(
            "example.org",
            &["ns1.example.net"],
            vec![("www.example.org", a(1))],
        );
        z1.records[0].ttl = 60;
        let z2 = zone("example.org", &[], vec![("www.example.org", a(2))]);
        let z = &assemble(
            &[("web1".to_owned(), vec![z1]), ("web2".to_owned(), vec![z2])],
            &Policy::default(),
        )[0];
        assert_eq!(
            z.records.iter().map(|e| e.ttl).collect::<Vec<_>>(),
            [60, 60]
        );
        assert!(z.conflicts.is_empty(), "a server without ns does not vote");
    }
}
