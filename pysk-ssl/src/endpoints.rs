//! The endpoints `served` probes: given on the command line, listed in a
//! file (one a line), or taken from the inventory's `ssl=` settings.
//!
//! ```text
//! # HOST:PORT [name=SNI] [starttls=smtp|imap|pop3] [expect=NAME]
//! www.example.org:443
//! 192.0.2.25:25 name=mail.example.org starttls=smtp
//! ```
//!
//! An inventory line's `ssl=443,25/smtp,110/pop3` names the ports of that
//! server (default 443); it is reached at its address when the inventory
//! gives one, else by name, and its name is the SNI.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use pysk_common::error::read_err;
use pysk_common::inventory::{Host, Inventory};

use crate::error::SslError;
use crate::names;

/// Largest endpoint list read, so that a wrong file is refused, not
/// slurped.
const MAX_LIST: u64 = 16 << 20;

/// The plain-text protocols that upgrade to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// SMTP's `STARTTLS` (RFC 3207).
    Smtp,
    /// IMAP's `STARTTLS` (RFC 3501).
    Imap,
    /// POP3's `STLS` (RFC 2595).
    Pop3,
}

impl FromStr for StartTls {
    type Err = String;

    fn from_str(text: &str) -> Result<StartTls, String> {
        match text {
            "smtp" => Ok(StartTls::Smtp),
            "imap" => Ok(StartTls::Imap),
            "pop3" => Ok(StartTls::Pop3),
            _ => Err(format!("{text:?}: expected smtp, imap or pop3")),
        }
    }
}

/// How strictly the served leaf is compared with the installed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// The name must be installed here, and served.
    Required,
    /// Compared when the name is installed here; else the served chain is
    /// judged alone (the inventory's servers keep their certificates on
    /// their own disks).
    IfInstalled,
}

/// One server to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT` connected to.
    pub address: String,
    /// The name sent as SNI.
    pub sni: String,
    /// The protocol to upgrade first.
    pub starttls: Option<StartTls>,
    /// The name whose installed `NAME.crt` the served leaf is compared with.
    pub expect: String,
    /// Whether that comparison is required.
    pub compare: Compare,
}

impl fmt::Display for Endpoint {
    /// `HOST:PORT`, and the SNI when it is not the host.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)?;
        if host(&self.address) != self.sni {
            write!(f, " ({})", self.sni)?;
        }
        Ok(())
    }
}

/// The host part of `HOST:PORT` (brackets of an IPv6 address removed).
pub fn host(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// What the command line says about one endpoint.
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// `--name`.
    pub sni: Option<String>,
    /// `--starttls`.
    pub starttls: Option<StartTls>,
    /// `--expect`.
    pub expect: Option<String>,
}

impl Given {
    /// The endpoint at `address` with these options.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, String> {
        checked_address(address)?;
        let sni = match &self.sni {
            Some(sni) => sni.clone(),
            None => host_name(host(address))?,
        };
        Ok(Endpoint {
            address: address.to_owned(),
            expect: self.expect.clone().unwrap_or_else(|| sni.clone()),
            sni,
            starttls: self.starttls,
            compare: Compare::Required,
        })
    }
}

/// Reads an endpoint list (`-`: standard input); a bad line is an error
/// naming the file and the line.
pub fn from_file(path: &Path) -> Result<Vec<Endpoint>, SslError> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().take(MAX_LIST).read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_LIST).read_to_string(&mut text))
    };
    read.map_err(read_err(path))?;
    if text.len() as u64 >= MAX_LIST {
        return Err(SslError::Input {
            path: path.to_owned(),
            reason: format!("more than {} MiB: not an endpoint list", MAX_LIST >> 20),
        });
    }
    parse_list(&text, path)
}

/// Parses an endpoint list; `path` names it in errors.
pub fn parse_list(text: &str, path: &Path) -> Result<Vec<Endpoint>, SslError> {
    let mut endpoints = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let endpoint = parse_line(line).map_err(|reason| SslError::List {
            path: path.to_owned(),
            line: index + 1,
            reason,
        })?;
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

/// One line of an endpoint list.
fn parse_line(line: &str) -> Result<Endpoint, String> {
    let mut fields = line.split_whitespace();
    let address = fields.next().unwrap_or_default();
    let mut given = Given::default();
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("{field:?}: expected key=value"))?;
        match key {
            "name" => given.sni = Some(server_name(value)?),
            "expect" => given.expect = Some(server_name(value)?),
            "starttls" => given.starttls = Some(value.parse()?),
            _ => return Err(format!("{key:?}: expected name, expect or starttls")),
        }
    }
    given.endpoint(address)
}

/// The endpoints of every server of the inventory.
pub fn from_inventory(path: &Path) -> Result<Vec<Endpoint>, SslError> {
    let inventory = Inventory::load(path)?;
    let mut endpoints = Vec::new();
    for host in &inventory.hosts {
        endpoints.extend(host_endpoints(host).map_err(|reason| SslError::List {
            path: path.to_owned(),
            line: host.line,
            reason,
        })?);
    }
    Ok(endpoints)
}

/// One server's endpoints, from its `ssl=` setting (default 443).
fn host_endpoints(host: &Host) -> Result<Vec<Endpoint>, String> {
    let ports = host.settings.get("ssl").map_or("443", String::as_str);
    let reach = match host.address {
        Some(std::net::IpAddr::V6(a)) => format!("[{a}]"),
        Some(a) => a.to_string(),
        None => host.name.clone(),
    };
    ports
        .split(',')
        .map(|item| {
            let (port, protocol) = item
                .split_once('/')
                .map_or((item, None), |(p, s)| (p, Some(s)));
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("ssl={ports}: {port:?} is not a port"))?;
            Ok(Endpoint {
                address: format!("{reach}:{port}"),
                sni: host.name.clone(),
                starttls: protocol.map(str::parse).transpose()?,
                expect: host.name.clone(),
                compare: Compare::IfInstalled,
            })
        })
        .collect()
}

/// `HOST:PORT` with a port.
fn checked_address(address: &str) -> Result<(), String> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {
            Ok(())
        }
        _ => Err(format!("{address:?}: expected HOST:PORT")),
    }
}

/// An endpoint's host as the name it is probed for: any host name
/// (`localhost` too) or IP address.
fn host_name(text: &str) -> Result<String, String> {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    pysk_common::hostname::check(&name).map_err(|why| format!("{text:?}: {why}"))?;
    Ok(name)
}

/// A name that can be sent as SNI and names files: a fully qualified
/// host name, or (from an endpoint's host) an IP address.
fn server_name(text: &str) -> Result<String, String> {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    names::parse(text, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Result<Vec<Endpoint>, String> {
        parse_list(text, Path::new("list")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_list_gives_each_endpoint_its_own_options() {
        let got = list(
            "# mail\nwww.example.org:443\n\n192.0.2.25:25 name=mail.example.org starttls=smtp # mx\n\
             [2001:db8::1]:993 name=imap.example.org expect=mail.example.org\n",
        )
        .expect("parses");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].sni, "www.example.org");
        assert_eq!(got[0].expect, "www.example.org");
        assert_eq!(got[1].address, "192.0.2.25:25");
        assert_eq!(got[1].sni, "mail.example.org");
        assert_eq!(got[1].starttls, Some(StartTls::Smtp));
        assert_eq!(got[2].expect, "mail.example.org");
        assert_eq!(got[2].to_string(), "[2001:db8::1]:993 (imap.example.org)");
        assert!(got.iter().all(|e| e.compare == Compare::Required));
    }

    #[test]
    fn a_bad_line_is_named_with_its_file_and_line() {
        for (text, want) in [
            (
                "a.example:443\nb.example\n",
                "list:2: \"b.example\": expected HOST:PORT",
            ),
            (
                "a.example:0\n",
                "list:1: \"a.example:0\": expected HOST:PORT",
            ),
            (
                "a.example:25 starttls=ftp\n",
                "list:1: \"ftp\": expected smtp, imap or pop3",
            ),
            (
                "a.example:25 smtp\n",
                "list:1: \"smtp\": expected key=value",
            ),
            (
                "a.example:25 sni=x\n",
                "list:1: \"sni\": expected name, expect or starttls",
            ),
        ] {
            assert_eq!(list(text).expect_err(text), want);
        }
        assert!(list("127.0.0.1:443 name=a/b\n").is_err());
        assert!(list("a/b:443\n").is_err());
        let local = list("localhost:443\n").expect("a single label as host");
        assert_eq!(local[0].sni, "localhost");
    }

    #[test]
    fn the_inventory_gives_each_server_its_ports() {
        let inventory = Inventory::parse(
            "a.example.org 192.0.2.1 ssl=443,25/smtp\nb.example.org\nc.example.org 2001:db8::3 ssl=993\n",
            Path::new("hosts"),
        )
        .expect("inventory");
        let got: Vec<_> = inventory
            .hosts
            .iter()
            .flat_map(|h| host_endpoints(h).expect("endpoints"))
            .map(|e| (e.address, e.sni, e.starttls, e.compare))
            .collect();
        let a = "a.example.org".to_owned();
        assert_eq!(
            got,
            [
                (
                    "192.0.2.1:443".into(),
                    a.clone(),
                    None,
                    Compare::IfInstalled
                ),
                (
                    "192.0.2.1:25".into(),
                    a,
                    Some(StartTls::Smtp),
                    Compare::IfInstalled
                ),
                (
                    "b.example.org:443".into(),
                    "b.example.org".into(),
                    None,
                    Compare::IfInstalled
                ),
                (
                    "[2001:db8::3]:993".into(),
                    "c.example.org".into(),
                    None,
                    Compare::IfInstalled
                ),
            ]
        );
        let bad = Inventory::parse("a.example.org ssl=443,x/smtp\n", Path::new("hosts"))
            .expect("inventory");
        assert_eq!(
            host_endpoints(&bad.hosts[0]).expect_err("bad port"),
            "ssl=443,x/smtp: \"x\" is not a port"
        );
    }
}
