//! `served`: the chain a server presents, compared with the one on disk.
//! "Renewed but not reloaded" is the failure this catches; the served
//! chain is also judged as `install` judges a new one (path to an anchor,
//! expiry, names). STARTTLS for SMTP, IMAP and POP3, because the fleet
//! serves mail. Endpoints are probed concurrently, each bounded in time.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use serde::Serialize;

use pysk_common::date::unix_now;
use pysk_common::error::cause;
use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::certs::{self, Cert};
use crate::chain;
use crate::error::SslError;
use crate::store::{Part, Store};

/// Most endpoints probed at once.
const CONCURRENCY: usize = 32;

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
            _ => Err("expected smtp, imap or pop3".to_owned()),
        }
    }
}

/// What `served` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT` of each server.
    pub endpoints: Vec<String>,
    /// The name sent as SNI (default: the host).
    pub sni: Option<String>,
    /// The protocol to upgrade first.
    pub starttls: Option<StartTls>,
    /// The name whose installed files the served chain is compared with
    /// (default: the SNI name).
    pub expect: Option<String>,
    /// The certificate directory.
    pub dir: PathBuf,
    /// The trust anchors (`None`: the system's store).
    pub ca_file: Option<PathBuf>,
    /// Warn when the served chain expires within this many days.
    pub warn_days: u64,
    /// The limit of each connect, read and write.
    pub timeout: Duration,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// One endpoint's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `HOST:PORT`.
    pub endpoint: String,
    /// The name compared with the disk.
    pub name: String,
    /// The subjects of the served certificates, leaf first, as served.
    pub served: Vec<String>,
    /// The served leaf's expiry (`YYYY-MM-DD`).
    pub expires: Option<String>,
    /// Whether the served leaf is the installed `NAME.crt`.
    pub installed: bool,
    /// What needs attention (none: all is well).
    pub problems: Vec<String>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    endpoints: &'a [Verdict],
    attention: usize,
}

/// Probes every endpoint and reports.
pub fn run(options: &Options, report: &Reporter) -> Result<Outcome, SslError> {
    let anchors = chain::anchors(options.ca_file.as_deref())?;
    let mut verdicts = Vec::new();
    for batch in options.endpoints.chunks(CONCURRENCY) {
        let found: Vec<Verdict> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|e| s.spawn(|| judge(e, options, &anchors)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join())
                .collect::<Result<_, _>>()
        })
        .map_err(|_| pysk_common::Error::Internal("a probe thread panicked".to_owned()))?;
        verdicts.extend(found);
    }
    let attention = verdicts.iter().filter(|v| !v.problems.is_empty()).count();
    if options.json {
        report::print_json(&Summary {
            endpoints: &verdicts,
            attention,
        })?;
    } else {
        for v in &verdicts {
            for problem in &v.problems {
                report.warn(format_args!("{}: {problem}", v.endpoint));
            }
            if v.problems.is_empty() {
                report.info(format_args!(
                    "{}: serves the installed {}",
                    v.endpoint, v.name
                ));
            }
        }
    }
    Ok(if attention == 0 {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// How often `install` probes after the reload, a second apart, until the
/// server serves the new certificate (a reload takes effect a moment later).
const CONFIRM_ATTEMPTS: u32 = 5;

/// `install`'s check after the reload (`ssl_check_after_reload`): the one
/// endpoint of `options` probed until it serves the installed
/// certificate; otherwise its problems are reported (exit 1).
pub fn confirm(options: &Options, report: &Reporter) -> Result<Outcome, SslError> {
    let anchors = chain::anchors(options.ca_file.as_deref())?;
    let Some(endpoint) = options.endpoints.first() else {
        return Ok(Outcome::Success);
    };
    let mut verdict = judge(endpoint, options, &anchors);
    for _ in 1..CONFIRM_ATTEMPTS {
        if verdict.problems.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        verdict = judge(endpoint, options, &anchors);
    }
    for problem in &verdict.problems {
        report.warn(format_args!("{endpoint}: {problem}"));
    }
    if verdict.problems.is_empty() {
        report.info(format_args!(
            "{endpoint}: serves the installed {}",
            verdict.name
        ));
        return Ok(Outcome::Success);
    }
    Ok(Outcome::Partial)
}

/// One endpoint: its chain fetched, compared with the disk, judged.
fn judge(endpoint: &str, options: &Options, anchors: &[Cert]) -> Verdict {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let sni = options.sni.clone().unwrap_or_else(|| host.to_owned());
    let name = options.expect.clone().unwrap_or_else(|| sni.clone());
    let mut verdict = Verdict {
        endpoint: endpoint.to_owned(),
        name: name.clone(),
        served: Vec::new(),
        expires: None,
        installed: false,
        problems: Vec::new(),
    };
    let served = match fetch(endpoint, &sni, options) {
        Ok(served) => served,
        Err(why) => {
            verdict.problems.push(why);
            return verdict;
        }
    };
    verdict.served = served.iter().map(|c| c.subject.clone()).collect();
    let Some((leaf, rest)) = served.split_first() else {
        verdict.problems.push("no certificate served".to_owned());
        return verdict;
    };
    verdict.expires = Some(chain::date(leaf.not_after));
    compare(&mut verdict, leaf, options);
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    match chain::build(leaf.clone(), rest.to_vec(), anchors) {
        Ok(path) => {
            if let Err(f) = chain::expiry(&path, now, options.warn_days) {
                verdict.problems.push(f.reason);
            }
        }
        Err(f) => verdict
            .problems
            .push(format!("the served chain: {}", f.reason)),
    }
    if let Err(f) = chain::covers(leaf, &name) {
        verdict.problems.push(f.reason);
    }
    verdict
}

/// The served leaf against the installed `NAME.crt`.
fn compare(verdict: &mut Verdict, leaf: &Cert, options: &Options) {
    let store = Store::new(options.dir.clone(), 0);
    let path = store.live(&verdict.name, Part::Cert);
    let installed = match certs::read(&path) {
        Ok(mut given) => given.remove(0),
        Err(e) => {
            verdict
                .problems
                .push(format!("nothing installed to compare with: {e}"));
            return;
        }
    };
    verdict.installed = installed.der == leaf.der;
    if verdict.installed {
        return;
    }
    verdict
        .problems
        .push(if installed.not_after > leaf.not_after {
            format!(
                "renewed but not reloaded: serves a certificate expiring {}, {} expires {}",
                chain::date(leaf.not_after),
                path.display(),
                chain::date(installed.not_after)
            )
        } else {
            format!("serves another certificate than {}", path.display())
        });
}

/// Connects, upgrades when asked, and returns the chain the server sent.
fn fetch(endpoint: &str, sni: &str, options: &Options) -> Result<Vec<Cert>, String> {
    let address = endpoint
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {}", cause(&e)))?
        .next()
        .ok_or_else(|| "no address".to_owned())?;
    let mut tcp = TcpStream::connect_timeout(&address, options.timeout)
        .map_err(|e| format!("cannot connect: {}", cause(&e)))?;
    let io = |e: std::io::Error| cause(&e);
    tcp.set_read_timeout(Some(options.timeout)).map_err(io)?;
    tcp.set_write_timeout(Some(options.timeout)).map_err(io)?;
    if let Some(protocol) = options.starttls {
        starttls(&mut tcp, protocol)?;
    }
    let recorder = Arc::new(Recorder::default());
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
    let server =
        ServerName::try_from(sni.to_owned()).map_err(|_| format!("{sni:?}: not a server name"))?;
    let mut tls = ClientConnection::new(Arc::new(config), server).map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake: {}", cause(&e)))?;
    }
    let chain = recorder
        .chain
        .lock()
        .map_err(|_| "a poisoned lock".to_owned())?
        .clone();
    chain
        .iter()
        .enumerate()
        .map(|(n, der)| {
            certs::parse(der).map_err(|why| format!("served certificate {}: {why}", n + 1))
        })
        .collect()
}

/// The plain-text exchange before the handshake.
fn starttls(tcp: &mut TcpStream, protocol: StartTls) -> Result<(), String> {
    let first = |_: &str| true;
    match protocol {
        StartTls::Smtp => {
            // A reply's last line has a blank, not a dash, after its code.
            let last = |l: &str| l.as_bytes().get(3) != Some(&b'-');
            expect(tcp, "220", last)?;
            send(tcp, "EHLO pysk-ssl.invalid\r\n")?;
            expect(tcp, "250", last)?;
            send(tcp, "STARTTLS\r\n")?;
            expect(tcp, "220", last)
        }
        StartTls::Imap => {
            expect(tcp, "* OK", first)?;
            send(tcp, "a1 STARTTLS\r\n")?;
            expect(tcp, "a1 OK", |l: &str| l.starts_with("a1 "))
        }
        StartTls::Pop3 => {
            expect(tcp, "+OK", first)?;
            send(tcp, "STLS\r\n")?;
            expect(tcp, "+OK", first)
        }
    }
}

/// Sends one command line.
fn send(tcp: &mut TcpStream, line: &str) -> Result<(), String> {
    tcp.write_all(line.as_bytes())
        .map_err(|e| format!("STARTTLS: {}", cause(&e)))
}

/// Reads lines until `last` says a reply ended; its final line must start
/// with `want`.
fn expect(tcp: &mut TcpStream, want: &str, last: impl Fn(&str) -> bool) -> Result<(), String> {
    for _ in 0..100 {
        let line = read_line(tcp)?;
        if last(&line) {
            if line.starts_with(want) {
                return Ok(());
            }
            return Err(format!(
                "STARTTLS: the server answered {:?}",
                line.trim_end()
            ));
        }
    }
    Err("STARTTLS: a reply of more than 100 lines".to_owned())
}

/// One line, byte by byte (nothing of the handshake is read ahead), at
/// most 1,000 bytes.
fn read_line(tcp: &mut TcpStream) -> Result<String, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 1000 {
        match tcp.read(&mut byte) {
            Ok(0) => return Err("STARTTLS: the server closed the connection".to_owned()),
            Ok(_) if byte[0] == b'\n' => return Ok(String::from_utf8_lossy(&line).into_owned()),
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(format!("STARTTLS: {}", cause(&e))),
        }
    }
    Err("STARTTLS: a line longer than 1000 bytes".to_owned())
}

/// A verifier that records the chain and accepts it: `served` judges the
/// chain itself, so that a broken one is reported, not just refused. The
/// handshake's signatures are still verified (the server holds the key).
#[derive(Debug, Default)]
struct Recorder {
    chain: Mutex<Vec<Vec<u8>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.to_vec()];
        chain.extend(intermediates.iter().map(|c| c.to_vec()));
        *self
            .chain
            .lock()
            .map_err(|_| rustls::Error::General("poisoned".into()))? = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
