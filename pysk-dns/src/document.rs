//! The records document a managed server publishes (version 1), and its
//! complete validation.
//!
//! ```json
//! {"version":1,"server":"web1.example.net","zones":[
//!   {"name":"example.org","ttl":3600,"ns":["ns1.example.net."],
//!    "records":[{"name":"www","type":"A","value":"192.0.2.10","ttl":300}]}]}
//! ```
//!
//! A document is untrusted input: [`validate`] either accepts all of it,
//! turned into typed [`Zone`]s with absolute names, or rejects it as a
//! whole with the first reason, naming the zone and record.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::name::{self, Rule};

/// The document as served, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The schema version; only 1 is known.
    pub version: u32,
    /// The server that published it; must be the inventory's name.
    pub server: String,
    /// Its zones.
    pub zones: Vec<ZoneDoc>,
}

/// One zone of a document, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneDoc {
    /// The zone's name.
    pub name: String,
    /// The default TTL of its records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// Its name servers.
    #[serde(default)]
    pub ns: Vec<String>,
    /// Its records.
    #[serde(default)]
    pub records: Vec<RecordDoc>,
}

/// One record of a zone, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDoc {
    /// Owner, relative to the zone, `@`, or absolute with a trailing dot.
    pub name: String,
    /// A, AAAA, CNAME, MX, TXT, SRV, NS or CAA.
    #[serde(rename = "type")]
    pub rtype: String,
    /// The data: an address, a name (relative to the zone unless it ends
    /// in `.`), the text, or CAA's value.
    pub value: String,
    /// TTL; the zone's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// MX and SRV priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// SRV weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    /// SRV port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// CAA flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u8>,
    /// CAA tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// A validated zone of one server: absolute names, concrete TTLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The zone's name.
    pub name: String,
    /// The default TTL.
    pub ttl: u32,
    /// Its name servers, as the server gave them.
    pub ns: Vec<String>,
    /// Its records.
    pub records: Vec<Record>,
}

/// A validated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The absolute owner name.
    pub owner: String,
    /// Its TTL (the zone's when the document gave none).
    pub ttl: u32,
    /// Type and data.
    pub data: Data,
}

/// A record's type and data. The variants' order is the order records of
/// one name are written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Data {
    /// A delegation's name server (absolute).
    Ns(String),
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// An alias (absolute target).
    Cname(String),
    /// A mail exchanger: priority, absolute host (`""`: null MX).
    Mx(u16, String),
    /// Text, split into strings of 255 bytes when written.
    Txt(String),
    /// A service: priority, weight, port, absolute target (`""`: none).
    Srv(u16, u16, u16, String),
    /// Certification authority authorisation: flags, tag, value.
    Caa(u8, String, String),
}

impl Data {
    /// The record type's mnemonic.
    pub fn type_name(&self) -> &'static str {
        match self {
            Data::Ns(_) => "NS",
            Data::A(_) => "A",
            Data::Aaaa(_) => "AAAA",
            Data::Cname(_) => "CNAME",
            Data::Mx(..) => "MX",
            Data::Txt(_) => "TXT",
            Data::Srv(..) => "SRV",
            Data::Caa(..) => "CAA",
        }
    }
}

/// The highest TTL RFC 2181 allows.
pub const MAX_TTL: u32 = 2_147_483_647;
/// The longest TXT value accepted (its strings together).
pub const MAX_TXT: usize = 8192;
/// The zone TTL when a document gives none.
pub const DEFAULT_TTL: u32 = 3600;

/// Parses a document from JSON, reporting the line and column of a syntax
/// or schema error.
pub fn parse(bytes: &[u8]) -> Result<Document, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not a version 1 records document: {e}"))
}

/// Validates `doc`, published by the server the inventory calls `server`,
/// completely: schema version, server name, every name, address, number
/// and text. Returns its zones, or the first reason to reject it whole.
pub fn validate(doc: &Document, server: &str) -> Result<Vec<Zone>, String> {
    if doc.version != 1 {
        return Err(format!("version {} (only 1 is known)", doc.version));
    }
    if !doc.server.eq_ignore_ascii_case(server) {
        return Err(format!(
            "published by {:?}, but fetched for {server}",
            doc.server
        ));
    }
    let mut seen = HashSet::new();
    doc.zones
        .iter()
        .map(|z| {
            let zone = zone(z).map_err(|e| format!("zone {:?}: {e}", z.name))?;
            if !seen.insert(zone.name.clone()) {
                return Err(format!("zone {} listed twice", zone.name));
            }
            Ok(zone)
        })
        .collect()
}

fn ttl(value: u32) -> Result<u32, String> {
    if value > MAX_TTL {
        Err(format!("TTL {value} above {MAX_TTL}"))
    } else {
        Ok(value)
    }
}

fn zone(z: &ZoneDoc) -> Result<Zone, String> {
    let name = name::absolute(&z.name, Rule::Host, false)?;
    let default_ttl = ttl(z.ttl.unwrap_or(DEFAULT_TTL))?;
    let ns = z
        .ns
        .iter()
        .map(|n| {
            name::in_zone(n, &name, Rule::Host, false, false).map_err(|e| format!("ns {n:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let records = z
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            record(r, &name, default_ttl)
                .map_err(|e| format!("record {} ({:?} {:?}): {e}", i + 1, r.name, r.rtype))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Zone {
        name,
        ttl: default_ttl,
        ns,
        records,
    })
}

fn text(value: &str, what: &str, max: usize) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err(format!("control character in the {what}"));
    }
    if value.len() > max {
        return Err(format!("{what} longer than {max} bytes"));
    }
    Ok(())
}

/// The record types a document may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RType {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Srv,
    Ns,
    Caa,
}

impl RType {
    /// The type a record's `type` names, in any case.
    fn parse(text: &str) -> Result<RType, String> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "A" => RType::A,
            "AAAA" => RType::Aaaa,
            "CNAME" => RType::Cname,
            "MX" => RType::Mx,
            "TXT" => RType::Txt,
            "SRV" => RType::Srv,
            "NS" => RType::Ns,
            "CAA" => RType::Caa,
            _ => return Err(format!("unknown record type {text:?}")),
        })
    }

    /// Its mnemonic, for messages.
    fn name(self) -> &'static str {
        match self {
            RType::A => "A",
            RType::Aaaa => "AAAA",
            RType::Cname => "CNAME",
            RType::Mx => "MX",
            RType::Txt => "TXT",
            RType::Srv => "SRV",
            RType::Ns => "NS",
            RType::Caa => "CAA",
        }
    }

    /// The optional fields it takes, and the rule its owner name follows
    /// (host names for records that name hosts, `_` allowed otherwise).
    fn shape(self) -> (&'static [&'static str], Rule) {
        match self {
            RType::A | RType::Aaaa => (&[], Rule::Host),
            RType::Mx => (&["priority"], Rule::Host),
            RType::Srv => (&["priority", "weight", "port"], Rule::Service),
            RType::Caa => (&["flags", "tag"], Rule::Service),
            RType::Cname | RType::Txt | RType::Ns => (&[], Rule::Service),
        }
    }
}

/// One record of the zone `origin`, validated: its type, the fields it
/// may carry, its owner, its data, its TTL (the zone's `default_ttl` when
/// absent), in that order.
fn record(r: &RecordDoc, origin: &str, default_ttl: u32) -> Result<Record, String> {
    let kind = RType::parse(&r.rtype)?;
    let (allowed, rule) = kind.shape();
    check_fields(r, kind, allowed)?;
    let owner = owner(r, origin, rule)?;
    let data = data(r, kind, &owner, origin)?;
    Ok(Record {
        owner,
        ttl: ttl(r.ttl.unwrap_or(default_ttl))?,
        data,
    })
}

/// Refuses a field that a record of `kind` does not take (a priority on
/// an A record, say).
fn check_fields(r: &RecordDoc, kind: RType, allowed: &[&str]) -> Result<(), String> {
    let present = [
        ("priority", r.priority.is_some()),
        ("weight", r.weight.is_some()),
        ("port", r.port.is_some()),
        ("flags", r.flags.is_some()),
        ("tag", r.tag.is_some()),
    ];
    for (field, is_set) in present {
        if is_set && !allowed.contains(&field) {
            return Err(format!(
                "{field} does not belong to a {} record",
                kind.name()
            ));
        }
    }
    Ok(())
}

/// The record's absolute owner, which must lie inside the zone `origin`.
fn owner(r: &RecordDoc, origin: &str, rule: Rule) -> Result<String, String> {
    let owner = name::in_zone(&r.name, origin, rule, true, false)?;
    if !name::is_within(&owner, origin) {
        return Err(format!("owner {owner} lies outside the zone"));
    }
    Ok(owner)
}

/// The record's data from its value and fields, by type.
fn data(r: &RecordDoc, kind: RType, owner: &str, origin: &str) -> Result<Data, String> {
    let target = |rule| name::in_zone(&r.value, origin, rule, false, false);
    let target_or_root = |rule| name::in_zone(&r.value, origin, rule, false, true);
    let need =
        |v: Option<u16>, field: &str| v.ok_or_else(|| format!("{} needs {field}", kind.name()));
    Ok(match kind {
        RType::A => Data::A(
            r.value
                .parse()
                .map_err(|_| format!("{:?} is not an IPv4 address", r.value))?,
        ),
        RType::Aaaa => Data::Aaaa(
            r.value
                .parse()
                .map_err(|_| format!("{:?} is not an IPv6 address", r.value))?,
        ),
        RType::Cname if owner == origin => {
            return Err("a CNAME cannot be at the zone's apex".to_owned());
        }
        RType::Cname => Data::Cname(target(Rule::Service)?),
        RType::Ns if owner == origin => {
            return Err("the zone's own name servers belong in its ns list".to_owned());
        }
        RType::Ns if owner.starts_with("*.") => {
            return Err(
                "a wildcard owner cannot have NS records (BIND refuses the zone)".to_owned(),
            );
        }
        RType::Ns => Data::Ns(target(Rule::Host)?),
        RType::Mx => Data::Mx(need(r.priority, "priority")?, target_or_root(Rule::Host)?),
        RType::Srv => Data::Srv(
            need(r.priority, "priority")?,
            need(r.weight, "weight")?,
            need(r.port, "port")?,
            target_or_root(Rule::Host)?,
        ),
        RType::Txt => {
            text(&r.value, "text", MAX_TXT)?;
            Data::Txt(r.value.clone())
        }
        RType::Caa => caa(r)?,
    })
}

/// A CAA record's data: flags (0 when absent), a tag of 1 to 15 letters
/// and digits (kept in lowercase), and its value.
fn caa(r: &RecordDoc) -> Result<Data, String> {
    let tag = r.tag.clone().ok_or("CAA needs tag")?;
    if tag.is_empty() || tag.len() > 15 || !tag.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("CAA tag {tag:?} is not 1 to 15 letters and digits"));
    }
    text(&r.value, "CAA value", 1024)?;
    Ok(Data::Caa(
        r.flags.unwrap_or(0),
        tag.to_ascii_lowercase(),
        r.value.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(records: &str) -> Document {
        let text = format!(
            r#"{{"version":1,"server":"web1.example.net","zones":[{{"name":"example.org","ttl":3600,
            "ns":["ns1.example.net."],"records":[{records}]}}]}}"#
        );
        parse(text.as_bytes()).expect("test document parses")
    }

    #[test]
    fn a_good_document_becomes_typed_zones() {
        let zones = validate(
            &doc(
                r#"{"name":"www","type":"A","value":"192.0.2.10","ttl":300},
                   {"name":"@","type":"MX","value":"mail","priority":10},
                   {"name":"_sip._tcp","type":"SRV","value":"sip.example.net.","priority":1,"weight":5,"port":5060},
                   {"name":"@","type":"CAA","value":"letsencrypt.org","flags":0,"tag":"issue"}"#,
            ),
            "web1.example.net",
        )
        .expect("valid");
        let z = &zones[0];
        assert_eq!(z.ns, ["ns1.example.net"]);
        assert_eq!(z.records[0].owner, "www.example.org");
        assert_eq!(z.records[0].ttl, 300);
        assert_eq!(z.records[1].data, Data::Mx(10, "mail.example.org".into()));
        assert_eq!(z.records[1].ttl, 3600);
        assert_eq!(
            z.records[2].data,
            Data::Srv(1, 5, 5060, "sip.example.net".into())
        );
    }

    #[test]
    fn every_kind_of_bad_record_rejects_the_document() {
        for (records, why) in [
            (
                r#"{"name":"a\n$INCLUDE /etc/passwd","type":"A","value":"192.0.2.1"}"#,
                "character",
            ),
            (r#"{"name":"www","type":"A","value":"192.0.2.300"}"#, "IPv4"),
            (
                r#"{"name":"www","type":"AAAA","value":"192.0.2.1"}"#,
                "IPv6",
            ),
            (
                r#"{"name":"www","type":"A","value":"192.0.2.1","priority":5}"#,
                "priority",
            ),
            (r#"{"name":"www","type":"MX","value":"mail"}"#, "priority"),
            (
                r#"{"name":"www","type":"PTR","value":"x."}"#,
                "unknown record type",
            ),
            (r#"{"name":"@","type":"CNAME","value":"x."}"#, "apex"),
            (
                r#"{"name":"*","type":"NS","value":"ns.example.net."}"#,
                "wildcard owner",
            ),
            (r#"{"name":"t","type":"TXT","value":"a\u0000b"}"#, "control"),
            (
                r#"{"name":"www.other.net.","type":"A","value":"192.0.2.1"}"#,
                "outside",
            ),
            (
                r#"{"name":"www","type":"A","value":"192.0.2.1","ttl":4294967295}"#,
                "TTL",
            ),
            (
                r#"{"name":"@","type":"CAA","value":"x","tag":"is sue"}"#,
                "tag",
            ),
        ] {
            let err = validate(&doc(records), "web1.example.net").expect_err(records);
            assert!(err.contains(why), "{records}: {err}");
        }
        assert!(parse(br#"{"version":1,"server":"x","zones":[{"name":"a","ns":5}]}"#).is_err());
        assert!(validate(&doc(""), "web2.example.net").is_err());
    }
}
