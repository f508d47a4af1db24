//! `served`: the chain a server presents, compared with the one on disk.
//! "Renewed but not reloaded" is the failure this catches; the served
//! chain is also judged as `install` judges a new one (path to an anchor,
//! expiry, names). STARTTLS for SMTP, IMAP and POP3, because the fleet
//! serves mail. Endpoints are probed concurrently, each bounded in time.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use serde::Serialize;

use pysk_common::error::cause;
use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::certs::{self, Cert};
use crate::chain;
use crate::endpoints::{Compare, Endpoint, StartTls};
use crate::error::SslError;
use crate::store::{Part, Store};

/// Most endpoints probed at once.
const CONCURRENCY: usize = 64;

/// What `served` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The servers to probe.
    pub endpoints: Vec<Endpoint>,
    /// The certificate directory.
    pub dir: PathBuf,
    /// The trust anchors (`None`: the system's store).
    pub ca_file: Option<PathBuf>,
    /// Warn when the served chain expires within this many days.
    pub warn_days: u64,
    /// The limit of one endpoint's whole probe: connect, STARTTLS,
    /// handshake.
    pub timeout: Duration,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// One endpoint's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `HOST:PORT` connected to.
    pub endpoint: String,
    /// The name sent as SNI.
    pub sni: String,
    /// The name compared with the disk.
    pub name: String,
    /// The subjects of the served certificates, leaf first, as served.
    pub served: Vec<String>,
    /// The served leaf's expiry (`YYYY-MM-DD`).
    pub expires: Option<String>,
    /// Whether the served leaf is the installed `NAME.crt` (`None`: not
    /// installed here, so not compared).
    pub installed: Option<bool>,
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
    let verdicts = probe_all(options, &anchors)?;
    let attention = verdicts.iter().filter(|v| !v.problems.is_empty()).count();
    if options.json {
        report::print_json(&Summary {
            endpoints: &verdicts,
            attention,
        })?;
    } else {
        for (v, e) in verdicts.iter().zip(&options.endpoints) {
            for problem in &v.problems {
                report.warn(format_args!("{e}: {problem}"));
            }
            if v.problems.is_empty() {
                report.info(format_args!("{e}: {}", v.good()));
            }
        }
    }
    Ok(if attention == 0 {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// Every endpoint judged, [`CONCURRENCY`] at a time, in the given order.
fn probe_all(options: &Options, anchors: &[Cert]) -> Result<Vec<Verdict>, SslError> {
    let next = AtomicUsize::new(0);
    let found = Mutex::new(vec![None; options.endpoints.len()]);
    let workers = options.endpoints.len().clamp(1, CONCURRENCY);
    let work = || {
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let Some(endpoint) = options.endpoints.get(n) else {
                return true;
            };
            let verdict = judge(endpoint, options, anchors);
            match found.lock() {
                Ok(mut found) => found[n] = Some(verdict),
                Err(_) => return false,
            }
        }
    };
    let finished = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    });
    let found = found.into_inner().ok().filter(|_| finished);
    found
        .and_then(|v| v.into_iter().collect::<Option<Vec<_>>>())
        .ok_or_else(|| pysk_common::Error::Internal("a probe thread panicked".to_owned()).into())
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
        report.info(format_args!("{endpoint}: {}", verdict.good()));
        return Ok(Outcome::Success);
    }
    Ok(Outcome::Partial)
}

impl Verdict {
    /// What a good verdict says.
    fn good(&self) -> String {
        match self.installed {
            Some(_) => format!("serves the installed {}", self.name),
            None => format!(
                "serves a good chain for {} (not installed here, not compared)",
                self.name
            ),
        }
    }
}

/// One endpoint: its chain fetched, compared with the disk, judged.
fn judge(endpoint: &Endpoint, options: &Options, anchors: &[Cert]) -> Verdict {
    let mut verdict = Verdict {
        endpoint: endpoint.address.clone(),
        sni: endpoint.sni.clone(),
        name: endpoint.expect.clone(),
        served: Vec::new(),
        expires: None,
        installed: None,
        problems: Vec::new(),
    };
    let served = match fetch(endpoint, options.timeout) {
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
    compare(&mut verdict, leaf, endpoint.compare, &options.dir);
    let now = chain::now();
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
    if let Err(f) = chain::covers(leaf, &verdict.name) {
        verdict.problems.push(f.reason);
    }
    verdict
}

/// The served leaf against the installed `NAME.crt`.
fn compare(verdict: &mut Verdict, leaf: &Cert, how: Compare, dir: &Path) {
    let store = Store::new(dir.to_owned(), 0);
    let path = store.live(&verdict.name, Part::Cert);
    let installed = match certs::read(&path) {
        Ok(mut given) => given.remove(0),
        Err(SslError::Common(pysk_common::Error::Read { source, .. }))
            if how == Compare::IfInstalled && source.kind() == ErrorKind::NotFound =>
        {
            return;
        }
        Err(e) => {
            verdict
                .problems
                .push(format!("nothing installed to compare with: {e}"));
            return;
        }
    };
    let same = installed.der == leaf.der;
    verdict.installed = Some(same);
    if same {
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

/// Connects, upgrades when asked, and returns the chain the server sent,
/// all within `timeout`.
fn fetch(endpoint: &Endpoint, timeout: Duration) -> Result<Vec<Cert>, String> {
    let deadline = Deadline(Instant::now() + timeout, timeout);
    let mut tcp = connect(&endpoint.address, deadline)?;
    if let Some(protocol) = endpoint.starttls {
        starttls(&mut Line(&mut tcp, deadline), protocol)?;
    }
    let recorder = Arc::new(Recorder::default());
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
    let server = ServerName::try_from(endpoint.sni.clone())
        .map_err(|_| format!("{:?}: not a server name", endpoint.sni))?;
    let mut tls = ClientConnection::new(Arc::new(config), server).map_err(|e| e.to_string())?;
    handshake(&mut tls, &mut tcp, deadline).map_err(|e| format!("TLS handshake: {e}"))?;
    // Said goodbye as a client should; the chain is already recorded.
    tls.send_close_notify();
    let _ = tls.write_tls(&mut tcp);
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

/// A connection to the first of the address's resolved addresses that
/// accepts one within the deadline (a name with an IPv6 and an IPv4
/// address where only one is served still connects).
fn connect(address: &str, deadline: Deadline) -> Result<TcpStream, String> {
    let addresses = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {}", cause(&e)))?;
    let mut last = "no address".to_owned();
    for address in addresses {
        match TcpStream::connect_timeout(&address, deadline.left()?) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = format!("cannot connect: {}", cause(&e)),
        }
    }
    Err(last)
}

/// When an endpoint's probe must end, and its whole budget (for the
/// message).
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant, Duration);

impl Deadline {
    /// The time left, or the error that says it ran out.
    fn left(self) -> Result<Duration, String> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer within {} s", self.1.as_secs_f64()));
        }
        Ok(left)
    }

    /// Bounds the socket's next read and write by the time left.
    fn bound(self, tcp: &TcpStream) -> Result<(), String> {
        let left = self.left()?;
        let io = |e: std::io::Error| cause(&e);
        tcp.set_read_timeout(Some(left)).map_err(io)?;
        tcp.set_write_timeout(Some(left)).map_err(io)
    }
}

/// The TLS handshake, each read and write bounded by the deadline (a
/// server sending a byte at a time cannot hold the probe longer).
fn handshake(
    tls: &mut ClientConnection,
    tcp: &mut TcpStream,
    deadline: Deadline,
) -> Result<(), String> {
    let timed_out =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
    while tls.is_handshaking() {
        deadline.bound(tcp)?;
        let step = if tls.wants_write() {
            tls.write_tls(tcp).map(drop)
        } else {
            match tls.read_tls(tcp) {
                Ok(0) => return Err("the server closed the connection".to_owned()),
                Ok(_) => tls
                    .process_new_packets()
                    .map(drop)
                    .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e)),
                Err(e) => Err(e),
            }
        };
        match step {
            Err(e) if timed_out(&e) => deadline.left().map(drop)?,
            Err(e) => return Err(cause(&e)),
            Ok(()) => {}
        }
    }
    // A TLS 1.3 client has nothing left to send; anything queued (an
    // alert) is flushed on a best-effort basis.
    while tls.wants_write() && tls.write_tls(tcp).is_ok_and(|n| n > 0) {}
    Ok(())
}

/// A connection read a line at a time before the handshake, within the
/// deadline.
struct Line<'a>(&'a mut TcpStream, Deadline);

/// The plain-text exchange before the handshake.
fn starttls(tcp: &mut Line<'_>, protocol: StartTls) -> Result<(), String> {
    let first = |_: &str| true;
    match protocol {
        StartTls::Smtp => {
            // A reply's last line has a blank, not a dash, after its code.
            let last = |l: &str| l.as_bytes().get(3) != Some(&b'-');
            tcp.expect("220", last)?;
            tcp.send("EHLO pysk-ssl.invalid\r\n")?;
            tcp.expect("250", last)?;
            tcp.send("STARTTLS\r\n")?;
            tcp.expect("220", last)
        }
        StartTls::Imap => {
            tcp.expect("* OK", first)?;
            tcp.send("a1 STARTTLS\r\n")?;
            tcp.expect("a1 OK", |l: &str| l.starts_with("a1 "))
        }
        StartTls::Pop3 => {
            tcp.expect("+OK", first)?;
            tcp.send("STLS\r\n")?;
            tcp.expect("+OK", first)
        }
    }
}

impl Line<'_> {
    /// Sends one command line.
    fn send(&mut self, line: &str) -> Result<(), String> {
        self.1.bound(self.0).map_err(|e| format!("STARTTLS: {e}"))?;
        self.0
            .write_all(line.as_bytes())
            .map_err(|e| format!("STARTTLS: {}", self.why(&e)))
    }

    /// Reads lines until `last` says a reply ended; its final line must
    /// start with `want`.
    fn expect(&mut self, want: &str, last: impl Fn(&str) -> bool) -> Result<(), String> {
        for _ in 0..100 {
            let line = self.read_line()?;
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
    fn read_line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.len() < 1000 {
            self.1.bound(self.0).map_err(|e| format!("STARTTLS: {e}"))?;
            match self.0.read(&mut byte) {
                Ok(0) => return Err("STARTTLS: the server closed the connection".to_owned()),
                Ok(_) if byte[0] == b'\n' => {
                    return Ok(String::from_utf8_lossy(&line).into_owned());
                }
                Ok(_) => line.push(byte[0]),
                Err(e) => return Err(format!("STARTTLS: {}", self.why(&e))),
            }
        }
        Err("STARTTLS: a line longer than 1000 bytes".to_owned())
    }

    /// An I/O error in words; a timeout as the deadline's.
    fn why(&self, e: &std::io::Error) -> String {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                format!("no answer within {} s", self.1.1.as_secs_f64())
            }
            _ => cause(e),
        }
    }
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
