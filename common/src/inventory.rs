//! The inventory: `/etc/pysk/hosts`, one managed server a line.
//!
//! ```text
//! # NAME [ADDRESS] [key=value ...]
//! mikuru.igowo.de 192.0.2.11 url=https://mikuru.igowo.de/pysk/dns.json
//! kyon.igowo.de   2001:db8::12
//! yuki.igowo.de
//! ```
//!
//! Fields are separated by blanks, so `cut -d' ' -f1` gives the names. A
//! malformed line or a name given twice is an error naming the line(s).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::hostname::is_host_name;

/// One managed server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its fully qualified name.
    pub name: String,
    /// Its address, when the inventory gives one.
    pub address: Option<IpAddr>,
    /// Further `key=value` settings, for example `url=`.
    pub settings: BTreeMap<String, String>,
    /// The 1-based line it was read from.
    pub line: usize,
}

/// All managed servers, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The servers, in the order the file lists them.
    pub hosts: Vec<Host>,
}

impl Inventory {
    /// Reads and parses the inventory file at `path`.
    pub fn load(path: &Path) -> Result<Inventory, Error> {
        let text = fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Inventory::parse(&text, path)
    }

    /// Parses inventory text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Inventory, Error> {
        let mut hosts = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let err = |reason: String| Error::Inventory {
                path: PathBuf::from(path),
                line,
                reason,
            };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut fields = content.split_ascii_whitespace();
            let name = fields.next().unwrap_or_default().to_ascii_lowercase();
            if !is_host_name(&name) {
                return Err(err(format!("{name:?} is not a valid host name")));
            }
            if let Some(first) = seen.insert(name.clone(), line) {
                return Err(err(format!(
                    "{name} is listed again (first on line {first})"
                )));
            }
            let mut address = None;
            let mut settings = BTreeMap::new();
            for (position, field) in fields.enumerate() {
                match field.split_once('=') {
                    Some((key, value)) => {
                        let key_ok = !key.is_empty()
                            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if !key_ok || value.is_empty() {
                            return Err(err(format!("malformed setting {field:?}")));
                        }
                        if settings.insert(key.to_owned(), value.to_owned()).is_some() {
                            return Err(err(format!("setting {key} given twice")));
                        }
                    }
                    None if position == 0 => {
                        address = Some(field.parse().map_err(|_| {
                            err(format!("{field:?} is not an IPv4 or IPv6 address"))
                        })?);
                    }
                    None => {
                        return Err(err(format!(
                            "unexpected {field:?}; expected NAME [ADDRESS] [key=value ...]"
                        )));
                    }
                }
            }
            hosts.push(Host {
                name,
                address,
                settings,
                line,
            });
        }
        Ok(Inventory { hosts })
    }

    /// The server called `name`, if listed.
    pub fn get(&self, name: &str) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "\
# the fleet
mikuru.igowo.de 192.0.2.11 url=https://mikuru.igowo.de/pysk/dns.json
kyon.igowo.de   2001:db8::12   # a comment after the fields

Yuki.igowo.de
haruhi.igowo.de role=web tier=2
";

    #[test]
    fn parses_names_addresses_and_settings() {
        let inv = Inventory::parse(HOSTS, Path::new("hosts")).expect("parses");
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mikuru.igowo.de",
                "kyon.igowo.de",
                "yuki.igowo.de",
                "haruhi.igowo.de"
            ]
        );
        let mikuru = inv.get("mikuru.igowo.de").expect("listed");
        assert_eq!(mikuru.address, Some("192.0.2.11".parse().expect("ip")));
        assert_eq!(
            mikuru.settings["url"],
            "https://mikuru.igowo.de/pysk/dns.json"
        );
        assert_eq!(mikuru.line, 2);
        let kyon = inv.get("KYON.igowo.de").expect("case-insensitive");
        assert_eq!(kyon.address, Some("2001:db8::12".parse().expect("ip")));
        assert_eq!(inv.get("yuki.igowo.de").expect("listed").address, None);
        let haruhi = inv.get("haruhi.igowo.de").expect("listed");
        assert_eq!(haruhi.address, None);
        assert_eq!(haruhi.settings["tier"], "2");
    }

    #[test]
    fn duplicate_name_is_an_error_with_both_lines() {
        let text = "a.example 192.0.2.1\nb.example\nA.example\n";
        let err = Inventory::parse(text, Path::new("/etc/pysk/hosts")).expect_err("duplicate");
        assert_eq!(
            err.to_string(),
            "/etc/pysk/hosts:3: a.example is listed again (first on line 1)"
        );
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line() {
        for (text, line) in [
            ("ok.example\nbad_name!\n", 2),
            ("a.example 300.1.1.1\n", 1),
            ("a.example 192.0.2.1 stray\n", 1),
            ("a.example\nb.example =x\n", 2),
            ("a.example url=\n", 1),
            ("a.example k=1 k=2\n", 1),
            ("-a.example\n", 1),
        ] {
            match Inventory::parse(text, Path::new("hosts")) {
                Err(Error::Inventory { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?} accepted: {other:?}"),
            }
        }
    }
}
