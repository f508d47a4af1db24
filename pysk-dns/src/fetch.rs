//! `pysk-dns fetch`: every server's records document, fetched in
//! parallel, validated completely, and kept as that server's snapshot
//! only when it is good.
//!
//! A server that cannot be reached, serves something invalid, or would
//! drop more than half of its zones keeps its last good snapshot; the run
//! reports it (with the snapshot's age) and exits 1, so that `build` never
//! loses zones to a bad night.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use pysk_common::atomic;
use pysk_common::date;
use pysk_common::error;
use pysk_common::exit::Outcome;
use pysk_common::inventory::{Host, Inventory};
use pysk_common::net;
use pysk_common::report::Reporter;
use pysk_common::secret::Secret;
use pysk_common::tls;

use crate::document::{self, Document};
use crate::error::DnsError;
use crate::snapshot::{self, Snapshot, human_age};
use crate::state::Location;

/// What `fetch` needs to know.
#[derive(Debug)]
pub struct Options {
    /// The document URL for servers without `url=`; `{name}` is replaced
    /// by the server's name, `{address}` by its address.
    pub url_template: String,
    /// HTTP basic auth user and password, when the servers want it.
    pub auth: Option<(String, Secret)>,
    /// CA certificates (PEM) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long to wait for the whole response once connected.
    pub read_timeout: Duration,
    /// The largest document accepted, in bytes.
    pub max_document: u64,
    /// Allow plain `http://` to other hosts than loopback
    /// (`--insecure-plaintext`).
    pub insecure_plaintext: bool,
    /// Accept a document that drops more than half of a server's zones.
    pub force: bool,
    /// How many servers are fetched at once.
    pub parallel: usize,
    /// The summary goes to stdout as `--json` instead of a line on stderr.
    pub json: bool,
}

/// What became of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// A new or changed document is its snapshot now.
    Updated {
        /// How many zones it holds.
        zones: usize,
    },
    /// The document is the one already kept.
    Unchanged {
        /// How many zones it holds.
        zones: usize,
    },
    /// It could not be fetched; the last snapshot (of that age) stays.
    Unreachable {
        /// Why.
        reason: String,
        /// The kept snapshot's age, if there is one.
        age: Option<Duration>,
    },
    /// Its document was rejected as a whole; the last snapshot stays.
    Rejected {
        /// Why.
        reason: String,
        /// The kept snapshot's age, if there is one.
        age: Option<Duration>,
    },
    /// Its document would drop more than half of its zones or of its
    /// records; held back.
    HeldBack {
        /// The zones it would drop.
        dropped: Vec<String>,
        /// How many zones the kept snapshot has.
        total: usize,
        /// How many zones the new document has.
        zones_after: usize,
        /// How many records the kept snapshot and the new document have.
        records: (usize, usize),
        /// The kept snapshot's age.
        age: Duration,
    },
    /// Its snapshot was damaged (it did not parse or validate); what the
    /// fetch then did.
    Damaged {
        /// The damaged snapshot and what became of it.
        note: String,
        /// The fate of the fetch, as if it had no snapshot.
        then: Box<Fate>,
    },
}

impl Fate {
    /// Whether this server's fetch needs an admin's attention.
    pub fn is_problem(&self) -> bool {
        !matches!(self, Fate::Updated { .. } | Fate::Unchanged { .. })
    }

    /// Its name in the `--json` summary: `updated`, `unchanged`,
    /// `unreachable`, `rejected` or `held_back`.
    pub fn name(&self) -> &'static str {
        match self {
            Fate::Updated { .. } => "updated",
            Fate::Unchanged { .. } => "unchanged",
            Fate::Unreachable { .. } => "unreachable",
            Fate::Rejected { .. } => "rejected",
            Fate::HeldBack { .. } => "held_back",
            Fate::Damaged { then, .. } => then.name(),
        }
    }

    /// A one-line description, for the report.
    pub fn describe(&self) -> String {
        let kept = |age: &Option<Duration>| match age {
            Some(a) => format!("keeping its snapshot from {} ago", human_age(*a)),
            None => "it has no snapshot yet".to_owned(),
        };
        match self {
            Fate::Updated { zones } => format!("updated, {zones} zones"),
            Fate::Unchanged { zones } => format!("unchanged, {zones} zones"),
            Fate::Unreachable { reason, age } => {
                format!("unreachable ({reason}); {}", kept(age))
            }
            Fate::Rejected { reason, age } => {
                format!("document rejected ({reason}); {}", kept(age))
            }
            Fate::HeldBack { .. } => format!(
                "held back: {}; keeping its snapshot (--force accepts it)",
                self.shrink().unwrap_or_default()
            ),
            Fate::Damaged { note, then } => format!("{note}; {}", then.describe()),
        }
    }

    /// What a held-back document would drop, with the zones and records
    /// before and after: `the new document drops 2 of its 2 zones (a, b):
    /// 2 zones with 6 records before, 0 with 0 after`.
    pub fn shrink(&self) -> Option<String> {
        let Fate::HeldBack {
            dropped,
            total,
            zones_after,
            records: (before, after),
            ..
        } = self
        else {
            return None;
        };
        let what = if dropped.len() * 2 > *total {
            format!(
                "drops {} of its {total} zones ({})",
                dropped.len(),
                dropped.join(", ")
            )
        } else {
            format!(
                "drops {} of its {before} records",
                before.saturating_sub(*after)
            )
        };
        Some(format!(
            "the new document {what}: {total} zones with {before} records before, \
             {zones_after} with {after} after"
        ))
    }
}

/// Fetches every server of `location`'s inventory into its state
/// directory, holding its lock, after clearing the snapshot temporary
/// files a killed run left (a warning through `reporter` if there were
/// any). Returns each server's name and fate, in inventory order.
pub fn run(
    location: &Location,
    options: &Options,
    reporter: &Reporter,
) -> Result<Vec<(String, Fate)>, DnsError> {
    let (inventory, _lock) = location.open()?;
    atomic::remove_stale_in([snapshot::dir(&location.dir)], reporter)?;
    fetch_all(&inventory, &location.dir, options)
}

/// Fetches every server of `inventory` into `state_dir`. Returns each
/// server's name and fate, in inventory order.
pub fn fetch_all(
    inventory: &Inventory,
    state_dir: &Path,
    options: &Options,
) -> Result<Vec<(String, Fate)>, DnsError> {
    let client = Client::new(options)?;
    let hosts = &inventory.hosts;
    let next = AtomicUsize::new(0);
    let workers = options.parallel.clamp(1, hosts.len().max(1));
    let mut results: Vec<(usize, Result<Fate, DnsError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(host) = hosts.get(i) else { break };
                        done.push((i, fetch_one(&client, host, state_dir, options)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    if results.len() != hosts.len() {
        return Err(pysk_common::Error::Internal("a fetch worker stopped early".to_owned()).into());
    }
    results
        .into_iter()
        .map(|(i, r)| r.map(|fate| (hosts[i].name.clone(), fate)))
        .collect()
}

/// Reports every server's fate on stderr (trouble as a warning, the rest
/// with `-v`), then, unless the summary goes out as `--json`, how many were
/// fetched. Exit 1 when a server needs attention.
pub fn report(fates: &[(String, Fate)], reporter: &Reporter, json: bool) -> Outcome {
    let mut outcome = Outcome::Success;
    for (server, fate) in fates {
        if fate.is_problem() {
            reporter.warn(format_args!("{server}: {}", fate.describe()));
            outcome = Outcome::Partial;
        } else {
            reporter.verbose(format_args!("{server}: {}", fate.describe()));
        }
    }
    if !json {
        let good = fates.iter().filter(|(_, f)| !f.is_problem()).count();
        reporter.info(format_args!("fetched {good} of {} servers", fates.len()));
    }
    outcome
}

/// The HTTP side: one agent with the timeouts, trust anchors and the
/// authorization header every request carries.
struct Client {
    agent: ureq::Agent,
    authorization: Option<String>,
    max_document: u64,
}

impl Client {
    fn new(options: &Options) -> Result<Client, DnsError> {
        let roots = tls::roots(options.ca_file.as_deref())?
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect::<Vec<_>>();
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::from(roots))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_recv_response(Some(options.read_timeout))
            .timeout_recv_body(Some(options.read_timeout))
            // A redirect could lead from https to plain http or elsewhere:
            // a server must publish at the address it is configured with.
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .new_agent();
        let authorization = options.auth.as_ref().map(|(user, password)| {
            let pair = format!("{user}:{}", password.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Ok(Client {
            agent,
            authorization,
            max_document: options.max_document,
        })
    }

    /// GETs `url`; the body, or why there is none.
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut request = self.agent.get(url);
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let mut response = request.call().map_err(why_not)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        response
            .body_mut()
            .with_config()
            .limit(self.max_document)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(n) => {
                    format!("document larger than {n} bytes")
                }
                other => why_not(other),
            })
    }
}

/// Why a request failed, in words for the admin: an I/O error (a refused
/// connection, a reset) by its cause alone, without Rust's `(os error N)`;
/// any other as `ureq` says it.
fn why_not(err: ureq::Error) -> String {
    match err {
        ureq::Error::Io(e) => error::cause(&e),
        other => other.to_string(),
    }
}

/// The URL of `host`'s document, checked: https, or http to loopback (or
/// anywhere with `--insecure-plaintext`), by `pysk_common::net`'s rule.
pub fn url_for(host: &Host, options: &Options) -> Result<String, String> {
    let url = match host.settings.get("url") {
        Some(u) => u.clone(),
        None => options.url_template.replace("{name}", &host.name).replace(
            "{address}",
            &host.address.map(|a| a.to_string()).unwrap_or_default(),
        ),
    };
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("URL {url:?} does not parse: {e}"))?;
    let host_part = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") => Ok(url),
        Some("http") if net::plaintext_allowed(host_part, options.insecure_plaintext) => Ok(url),
        Some("http") => Err(format!(
            "refusing plain http to {host_part} (records and password would cross \
             the network unprotected; use https, or --insecure-plaintext)"
        )),
        _ => Err(format!("URL {url:?} is neither https nor http")),
    }
}

fn fetch_one(
    client: &Client,
    host: &Host,
    state_dir: &Path,
    options: &Options,
) -> Result<Fate, DnsError> {
    let (old, damaged) = match snapshot::load(state_dir, &host.name) {
        Ok(old) => (old, None),
        Err(DnsError::State { path, reason }) => (None, Some((path, reason))),
        Err(e) => return Err(e),
    };
    let aside = damaged
        .as_ref()
        .map(|(path, _)| snapshot::aside_path(path, date::unix_now()));
    let fate = fetch_with(client, host, state_dir, options, old, aside.as_deref())?;
    let (Some((path, reason)), Some(aside)) = (damaged, aside) else {
        return Ok(fate);
    };
    let note = if fate.is_problem() {
        format!(
            "snapshot {} is damaged ({reason}); its zones keep their files until a fetch succeeds",
            path.display()
        )
    } else {
        format!(
            "snapshot {} was damaged ({reason}); set aside as {} and replaced",
            path.display(),
            aside.display()
        )
    };
    Ok(Fate::Damaged {
        note,
        then: Box::new(fate),
    })
}

/// Fetches `host`'s document and keeps it when good, against its kept
/// snapshot `old`; a damaged snapshot in its place is renamed to `aside`
/// before the good document replaces it.
fn fetch_with(
    client: &Client,
    host: &Host,
    state_dir: &Path,
    options: &Options,
    old: Option<Snapshot>,
    aside: Option<&Path>,
) -> Result<Fate, DnsError> {
    let now = date::unix_now();
    let age = old.as_ref().map(|s| s.age(now));
    let url = match url_for(host, options) {
        Ok(u) => u,
        Err(reason) => return Ok(Fate::Unreachable { reason, age }),
    };
    let body = match client.get(&url) {
        Ok(b) => b,
        Err(reason) => return Ok(Fate::Unreachable { reason, age }),
    };
    let checked: Result<(Document, usize), String> = document::parse(&body).and_then(|doc| {
        let zones = document::validate(&doc, &host.name)?.len();
        Ok((doc, zones))
    });
    let (doc, zones) = match checked {
        Ok(x) => x,
        Err(reason) => return Ok(Fate::Rejected { reason, age }),
    };
    if let Some(old) = &old
        && !options.force
    {
        let new_names: BTreeSet<String> = doc.zones.iter().map(|z| normal(&z.name)).collect();
        let old_names: BTreeSet<String> =
            old.document.zones.iter().map(|z| normal(&z.name)).collect();
        let dropped: Vec<String> = old_names.difference(&new_names).cloned().collect();
        let records = (records_in(&old.document), records_in(&doc));
        if dropped.len() * 2 > old_names.len()
            || (records.0 - records.0.min(records.1)) * 2 > records.0
        {
            return Ok(Fate::HeldBack {
                dropped,
                total: old_names.len(),
                zones_after: new_names.len(),
                records,
                age: old.age(now),
            });
        }
    }
    let unchanged = old
        .as_ref()
        .is_some_and(|o| serde_json::to_value(&o.document).ok() == serde_json::to_value(&doc).ok());
    if let Some(aside) = aside {
        let damaged = snapshot::path(state_dir, &host.name);
        std::fs::rename(&damaged, aside).map_err(pysk_common::error::write_err(&damaged))?;
    }
    snapshot::save(
        state_dir,
        &host.name,
        &Snapshot {
            fetched: now,
            document: doc,
        },
    )?;
    Ok(if unchanged {
        Fate::Unchanged { zones }
    } else {
        Fate::Updated { zones }
    })
}

/// How many records a document holds, in all its zones.
fn records_in(doc: &Document) -> usize {
    doc.zones.iter().map(|z| z.records.len()).sum()
}

fn normal(zone: &str) -> String {
    zone.trim_end_matches('.').to_ascii_lowercase()
}
