//! TLS for tests: a certificate authority made in the test ([`TestCa`]),
//! OpenSSL's verdicts on what a tool wrote ([`openssl_verify`],
//! [`s_client`]), a TLS server serving given files ([`SServer`], plain or
//! behind a STARTTLS greeting) and an ACME server ([`Pebble`]). Every
//! process runs on free loopback ports, within a time bound, and is stopped
//! when its handle is dropped.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::{Ready, Server, free_port, free_port_udp_tcp, require, secret_file};

/// How long an OpenSSL client or one-shot command may take before the
/// test fails.
const BOUND: Duration = Duration::from_secs(20);

/// Numbers the CAs of one test process, so that no two share a name.
static CA_NUMBER: AtomicU32 = AtomicU32::new(1);

/// A validity window in days from this moment (negative: in the past).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first day of validity, from now.
    pub from_days: i64,
    /// The last day of validity, from now.
    pub to_days: i64,
    /// Hours added to the end (see [`Validity::midday`]).
    pub extra_hours: i64,
}

impl Validity {
    /// Valid from `from_days` to `to_days` days from now.
    pub const fn days(from_days: i64, to_days: i64) -> Validity {
        Validity {
            from_days,
            to_days,
            extra_hours: 0,
        }
    }

    /// The same, ending twelve hours later: the whole days left stay the
    /// same from the moment the certificate is made until well after the
    /// tool read it, where an end exactly N days ahead is N days off in
    /// the same second and N - 1 a second later.
    pub const fn midday(self) -> Validity {
        Validity {
            extra_hours: 12,
            ..self
        }
    }

    /// A leaf as CAs issue them: since yesterday, for 90 days.
    pub const LEAF: Validity = Validity::days(-1, 90);
    /// A CA certificate with years ahead of it.
    pub const CA: Validity = Validity::days(-1, 3650);
    /// Valid since a month, expiring tomorrow.
    pub const EXPIRES_TOMORROW: Validity = Validity::days(-30, 1);
    /// Expired yesterday.
    pub const EXPIRED: Validity = Validity::days(-90, -1);

    fn apply(self, params: &mut CertificateParams) {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(self.from_days);
        params.not_after =
            now + time::Duration::days(self.to_days) + time::Duration::hours(self.extra_hours);
    }
}

/// A test root CA (ECDSA P-256), made in memory by rcgen.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    params: CertificateParams,
    pem: String,
    name: String,
}

/// An intermediate CA signed by a [`TestCa`] (or by another
/// intermediate); it signs leaves.
pub struct Intermediate {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    /// Its common name.
    name: String,
    /// Its certificate and those above it up to the root (not included),
    /// nearest first: what its leaves' [`Issued::chain`] is.
    chain: String,
}

/// A certificate the test CA issued and the chain that leads to the root,
/// PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The leaf certificate.
    pub cert: String,
    /// The intermediate that signed it, followed by those above that one
    /// up to the root (not included) when there are more.
    pub chain: String,
}

/// The files [`Issued::write`] made.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    /// `NAME.crt`: the leaf.
    pub cert: PathBuf,
    /// `NAME_chain.crt`: the intermediate(s).
    pub chain: PathBuf,
    /// `NAME_combined.crt`: leaf, then intermediate(s).
    pub combined: PathBuf,
    /// `NAME_reversed.crt`: intermediate, then leaf (the classic mistake).
    pub reversed: PathBuf,
}

/// An [`Issued`] certificate with the private key the test CA made for it
/// (never printed: no `Debug`).
#[derive(Clone)]
pub struct Leaf {
    /// The certificate and its chain.
    pub issued: Issued,
    /// Its private key (PKCS#8 PEM).
    pub key: String,
}

/// The files [`Leaf::write`] made: [`IssuedFiles`] and the key.
#[derive(Debug, Clone)]
pub struct LeafFiles {
    /// The certificate files.
    pub issued: IssuedFiles,
    /// `NAME.key`: the key, mode 0600.
    pub key: PathBuf,
}

impl std::ops::Deref for Leaf {
    type Target = Issued;
    fn deref(&self) -> &Issued {
        &self.issued
    }
}

impl std::ops::Deref for LeafFiles {
    type Target = IssuedFiles;
    fn deref(&self) -> &IssuedFiles {
        &self.issued
    }
}

fn ca_params(name: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    validity.apply(&mut params);
    params
}

fn new_key() -> KeyPair {
    KeyPair::generate().expect("generate a test key")
}

impl TestCa {
    /// A new root, valid for years ([`Validity::CA`]).
    pub fn new() -> TestCa {
        let n = CA_NUMBER.fetch_add(1, Ordering::Relaxed);
        let name = format!("pysk test root {n}");
        let params = ca_params(&name, Validity::CA);
        let key = new_key();
        let pem = params.self_signed(&key).expect("self-sign the root").pem();
        TestCa {
            issuer: Issuer::new(params.clone(), key),
            params,
            pem,
            name,
        }
    }

    /// This root's name and key certified by `older`: the cross-signed
    /// certificate a CA serves after its intermediate so that clients
    /// trusting only the older root still find a path (Sectigo's
    /// USERTrust by AAA, Let's Encrypt's ISRG Root X1 by DST).
    pub fn cross_signed_by(&self, older: &TestCa) -> String {
        self.params
            .signed_by(self.issuer.key(), &older.issuer)
            .expect("cross-sign the root")
            .pem()
    }

    /// Its common name, `pysk test root N` (its subject is `CN=` this
    /// name and nothing else).
    pub fn common_name(&self) -> &str {
        &self.name
    }

    /// The root certificate (the trust anchor a test gives `--ca-file`).
    pub fn root_pem(&self) -> &str {
        &self.pem
    }

    /// Writes the root certificate to `path`.
    pub fn write_root(&self, path: &Path) {
        fs::write(path, &self.pem).expect("write the test root");
    }

    /// A new intermediate signed by this root, valid for `validity`.
    pub fn intermediate(&self, validity: Validity) -> Intermediate {
        Intermediate::signed_by(&self.issuer, "", validity)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// A new intermediate's name: `pysk test intermediate N`, unique in the
/// test process.
fn intermediate_name() -> String {
    let n = CA_NUMBER.fetch_add(1, Ordering::Relaxed);
    format!("pysk test intermediate {n}")
}

impl Intermediate {
    /// A new intermediate signed by `issuer`, whose chain (`above`) up to
    /// the root follows it in [`Intermediate::chain`].
    fn signed_by(issuer: &Issuer<'static, KeyPair>, above: &str, validity: Validity) -> Self {
        let name = intermediate_name();
        let params = ca_params(&name, validity);
        let key = new_key();
        let pem = params
            .signed_by(&key, issuer)
            .expect("sign the intermediate")
            .pem();
        Intermediate {
            issuer: Issuer::new(params, key),
            chain: format!("{pem}{above}"),
            pem,
            name,
        }
    }

    /// A new intermediate signed by this one, valid for `validity`: a path
    /// of two intermediates to the root. Its leaves' chain is both, the
    /// new one first.
    pub fn intermediate(&self, validity: Validity) -> Intermediate {
        Intermediate::signed_by(&self.issuer, &self.chain, validity)
    }

    /// Two CAs, A and B, each issued by the other and neither by a root,
    /// both valid for `validity`: returns A (certified by B), whose
    /// leaves' chain is A (by B) then B (by A), a path that never ends at
    /// an anchor.
    pub fn cross_signed_loop(validity: Validity) -> Intermediate {
        let (a_name, b_name) = (intermediate_name(), intermediate_name());
        let (a_params, b_params) = (ca_params(&a_name, validity), ca_params(&b_name, validity));
        let (a_key, b_key) = (new_key(), new_key());
        let a_by_b = a_params
            .signed_by(&a_key, &Issuer::from_params(&b_params, &b_key))
            .expect("sign A with B")
            .pem();
        let b_by_a = b_params
            .signed_by(&b_key, &Issuer::from_params(&a_params, &a_key))
            .expect("sign B with A")
            .pem();
        Intermediate {
            issuer: Issuer::new(a_params, a_key),
            chain: format!("{a_by_b}{b_by_a}"),
            pem: a_by_b,
            name: a_name,
        }
    }

    /// The intermediate certificate.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Its common name, `pysk test intermediate N` (its subject is
    /// `CN=` this name and nothing else).
    pub fn common_name(&self) -> &str {
        &self.name
    }

    /// A server certificate for `sans` (host names, wildcards or IP
    /// addresses; the first is also the common name) with a new key.
    pub fn leaf(&self, sans: &[&str], validity: Validity) -> Leaf {
        let key = new_key();
        Leaf {
            issued: self.leaf_for(&key, sans, validity),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `sans`, like [`Intermediate::leaf`], over
    /// the private key `key` (PEM, as a tool wrote it; it must parse): the
    /// answer to a request whose names the test chooses, e.g. names other
    /// than those the key's CSR asked for.
    pub fn leaf_with_key(&self, key: &str, sans: &[&str], validity: Validity) -> Leaf {
        let pair = KeyPair::from_pem(key).expect("a private key rcgen reads");
        Leaf {
            issued: self.leaf_for(&pair, sans, validity),
            key: key.to_owned(),
        }
    }

    /// The server certificate for `sans` over `key`, valid for `validity`.
    fn leaf_for(&self, key: &KeyPair, sans: &[&str], validity: Validity) -> Issued {
        let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("valid test SANs");
        if let Some(first) = sans.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        server_cert(&mut params, validity);
        let cert = params.signed_by(key, &self.issuer).expect("sign the leaf");
        self.issued(cert.pem())
    }

    /// A server certificate for the key and names of `csr` (PEM, as a
    /// tool wrote it; its signature is checked), as a CA answers a request.
    pub fn sign_csr(&self, csr: &str, validity: Validity) -> Issued {
        let mut request =
            CertificateSigningRequestParams::from_pem(csr).expect("a well-formed, signed CSR");
        server_cert(&mut request.params, validity);
        let cert = request.signed_by(&self.issuer).expect("sign the CSR");
        self.issued(cert.pem())
    }

    fn issued(&self, cert: String) -> Issued {
        Issued {
            cert,
            chain: self.chain.clone(),
        }
    }
}

/// Makes `params` a server certificate's, valid for `validity`.
fn server_cert(params: &mut CertificateParams, validity: Validity) {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity.apply(params);
}

impl Issued {
    /// The leaf certificate in DER, as some CAs deliver it.
    pub fn cert_der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert.as_bytes())
            .expect("the leaf's PEM")
            .to_vec()
    }

    /// The leaf followed by its chain: what servers load.
    pub fn combined(&self) -> String {
        format!("{}{}", self.cert, self.chain)
    }

    /// The chain followed by the leaf: the wrong order.
    pub fn reversed(&self) -> String {
        format!("{}{}", self.chain, self.cert)
    }

    /// Writes the [`IssuedFiles`] as `dir/NAME*` (`dir` created).
    pub fn write(&self, dir: &Path, name: &str) -> IssuedFiles {
        let files = IssuedFiles {
            cert: dir.join(format!("{name}.crt")),
            chain: dir.join(format!("{name}_chain.crt")),
            combined: dir.join(format!("{name}_combined.crt")),
            reversed: dir.join(format!("{name}_reversed.crt")),
        };
        fs::create_dir_all(dir).expect("create the certificates' directory");
        for (path, text) in [
            (&files.cert, self.cert.clone()),
            (&files.chain, self.chain.clone()),
            (&files.combined, self.combined()),
            (&files.reversed, self.reversed()),
        ] {
            fs::write(path, text).expect("write a test certificate file");
        }
        files
    }
}

impl Leaf {
    /// Writes the [`LeafFiles`] as `dir/NAME*`: the certificates and
    /// `NAME.key`.
    pub fn write(&self, dir: &Path, name: &str) -> LeafFiles {
        let issued = self.issued.write(dir, name);
        let key = dir.join(format!("{name}.key"));
        secret_file(&key, &self.key);
        LeafFiles { issued, key }
    }
}

/// OpenSSL, when installed: `None` (outside CI) when it is missing.
pub fn openssl() -> Option<PathBuf> {
    require("openssl", "openssl")
}

/// Runs `cmd` with stdin empty and its output captured; fails the test
/// when it takes longer than `bound` (the process is killed).
pub fn run_bounded(cmd: Command, bound: Duration) -> Output {
    crate::cmd::run_fed(cmd, b"", bound)
}

/// `openssl verify -CAfile root -untrusted chain leaf`: `Ok` when OpenSSL
/// accepts the leaf, else `Err` with what it said.
pub fn openssl_verify(
    openssl: &Path,
    root: &Path,
    chain: &Path,
    leaf: &Path,
) -> Result<(), String> {
    let mut cmd = Command::new(openssl);
    cmd.arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(chain)
        .arg(leaf);
    let out = run_bounded(cmd, BOUND);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(text)
    }
}

/// Runs `openssl ARGS FILE` within the time bound: its standard output.
/// Fails the test, showing what OpenSSL said, when OpenSSL fails.
pub fn openssl_stdout(openssl: &Path, args: &[&str], file: &Path) -> String {
    let mut cmd = Command::new(openssl);
    cmd.args(args).arg(file);
    let out = run_bounded(cmd, BOUND);
    assert!(
        out.status.success(),
        "openssl {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The public key (PEM) OpenSSL reads from `file`: a private key's, or
/// else the first certificate's. Two files hold a matching key and
/// certificate when these are equal.
pub fn openssl_public_key(openssl: &Path, file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let args: &[&str] = if text.contains("PRIVATE KEY-----") {
        &["pkey", "-pubout", "-in"]
    } else {
        &["x509", "-pubkey", "-noout", "-in"]
    };
    openssl_stdout(openssl, args, file)
}

/// The plain-text protocol spoken before the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// SMTP: greeting, EHLO, STARTTLS.
    Smtp,
    /// IMAP: greeting, CAPABILITY, STARTTLS.
    Imap,
    /// POP3: greeting, STLS.
    Pop3,
}

impl StartTls {
    /// The name `openssl s_client -starttls` takes.
    pub fn name(self) -> &'static str {
        match self {
            StartTls::Smtp => "smtp",
            StartTls::Imap => "imap",
            StartTls::Pop3 => "pop3",
        }
    }

    fn greeting(self) -> &'static str {
        match self {
            StartTls::Smtp => "220 localhost ESMTP pysk-test\r\n",
            StartTls::Imap => "* OK [CAPABILITY IMAP4rev1 STARTTLS] pysk-test ready\r\n",
            StartTls::Pop3 => "+OK pysk-test ready\r\n",
        }
    }

    /// The answer to one command line, and whether TLS starts after it.
    fn answer(self, line: &str) -> (String, bool) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let upper = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase());
        match self {
            StartTls::Smtp => match upper(0).as_deref() {
                Some("EHLO" | "HELO") => ("250-localhost\r\n250 STARTTLS\r\n".into(), false),
                Some("STARTTLS") => ("220 2.0.0 Ready to start TLS\r\n".into(), true),
                _ => ("502 5.5.2 Not here\r\n".into(), false),
            },
            StartTls::Imap => {
                let tag = words.first().copied().unwrap_or("*");
                match upper(1).as_deref() {
                    Some("CAPABILITY") => (
                        format!(
                            "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n{tag} OK done\r\n"
                        ),
                        false,
                    ),
                    Some("STARTTLS") => (format!("{tag} OK Begin TLS\r\n"), true),
                    _ => (format!("{tag} BAD not here\r\n"), false),
                }
            }
            StartTls::Pop3 => match upper(0).as_deref() {
                Some("CAPA") => ("+OK\r\nSTLS\r\n.\r\n".into(), false),
                Some("STLS") => ("+OK Begin TLS\r\n".into(), true),
                _ => ("-ERR not here\r\n".into(), false),
            },
        }
    }
}

/// `openssl s_server` serving a certificate, its chain and its key on a
/// free loopback port, optionally behind a STARTTLS greeting; stopped when
/// dropped.
pub struct SServer {
    _server: Server,
    _front: Option<Front>,
    /// Where clients connect (the STARTTLS front when there is one).
    pub addr: SocketAddr,
}

impl SServer {
    /// Serves `cert` with `chain` (`-cert_chain`, when given) and `key`;
    /// its log goes to `dir`. With `starttls`, clients meet that
    /// protocol's greeting first and the handshake follows its STARTTLS.
    /// `None` (outside CI) when OpenSSL is missing.
    pub fn start(
        dir: &Path,
        cert: &Path,
        chain: Option<&Path>,
        key: &Path,
        starttls: Option<StartTls>,
    ) -> Option<SServer> {
        let openssl = openssl()?;
        let tls_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut cmd = Command::new(openssl);
        cmd.args(["s_server", "-www", "-quiet", "-accept"])
            .arg(tls_addr.to_string())
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key);
        if let Some(chain) = chain {
            cmd.arg("-cert_chain").arg(chain);
        }
        let log = dir.join(format!("s_server-{}.log", tls_addr.port()));
        let server = Server::start("openssl s_server", cmd, &log, Ready::Tcp(tls_addr), BOUND);
        let front = starttls.map(|protocol| Front::start(protocol, tls_addr));
        let addr = front.as_ref().map_or(tls_addr, |f| f.addr);
        Some(SServer {
            _server: server,
            _front: front,
            addr,
        })
    }
}

impl SServer {
    /// Serves `combined` (leaf first, then its chain, as nginx and Dovecot
    /// read `NAME_combined.crt`) with `key`: the first certificate as
    /// `-cert`, the rest as `-cert_chain`, split into files beside the
    /// log in `dir`. `None` (outside CI) when OpenSSL is missing.
    pub fn combined(
        dir: &Path,
        combined: &Path,
        key: &Path,
        starttls: Option<StartTls>,
    ) -> Option<SServer> {
        let text = fs::read_to_string(combined).expect("read the combined file");
        let certs = pem_certificates(&text);
        let (leaf, chain) = certs
            .split_first()
            .unwrap_or_else(|| panic!("no certificate in {}", combined.display()));
        let stem = combined.file_name().expect("a file name").to_string_lossy();
        let (leaf_file, chain_file) = (
            dir.join(format!("{stem}.served-leaf")),
            dir.join(format!("{stem}.served-chain")),
        );
        fs::write(&leaf_file, leaf).expect("write the served leaf");
        fs::write(&chain_file, chain.concat()).expect("write the served chain");
        let chain_file = (!chain.is_empty()).then_some(chain_file.as_path());
        SServer::start(dir, &leaf_file, chain_file, key, starttls)
    }
}

/// A plain-text listener that speaks a protocol's greeting and STARTTLS,
/// then relays the connection to the TLS server.
struct Front {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepter: Option<thread::JoinHandle<()>>,
}

impl Front {
    fn start(protocol: StartTls, backend: SocketAddr) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the STARTTLS front");
        let addr = listener.local_addr().expect("its address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accepter = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    thread::spawn(move || greet_and_relay(protocol, conn, backend));
                }
            }
        });
        Front {
            addr,
            stop,
            accepter: Some(accepter),
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag, and wait until it has
        // closed the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(accepter) = self.accepter.take() {
            let _ = accepter.join();
        }
    }
}

/// Answers commands until the client asks for TLS, then relays its bytes
/// to `backend` and back until either side closes.
fn greet_and_relay(protocol: StartTls, mut client: TcpStream, backend: SocketAddr) {
    let _ = client.set_read_timeout(Some(BOUND));
    if client.write_all(protocol.greeting().as_bytes()).is_err() {
        return;
    }
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (answer, start_tls) = protocol.answer(&line);
        if client.write_all(answer.as_bytes()).is_err() {
            return;
        }
        if start_tls {
            break;
        }
    }
    let Ok(mut server) = TcpStream::connect(backend) else {
        return;
    };
    // Bytes the client sent right after STARTTLS belong to the handshake.
    if server.write_all(reader.buffer()).is_err() {
        return;
    }
    relay(client, server);
}

/// Copies bytes both ways between `a` and `b` until both directions end.
fn relay(a: TcpStream, b: TcpStream) {
    let _ = a.set_read_timeout(None);
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let upstream = thread::spawn(move || {
        let (mut a, mut b) = (a, b);
        let _ = std::io::copy(&mut a, &mut b);
        let _ = b.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut b2, &mut a2);
    let _ = a2.shutdown(Shutdown::Write);
    let _ = upstream.join();
}

/// What `openssl s_client` saw of a server.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The handshake completed and the chain verified for the name.
    pub verified: bool,
    /// The certificates the server sent, in its order, PEM.
    pub chain: Vec<String>,
    /// Everything s_client printed, for assertion messages.
    pub output: String,
}

/// Connects to `addr` with `openssl s_client -verify_return_error
/// -verify_hostname name` (SNI `name`, trusting only `ca_file`), after the
/// `starttls` exchange when given, and reports the verdict and the served
/// chain. Bounded in time.
pub fn s_client(
    openssl: &Path,
    addr: SocketAddr,
    name: &str,
    ca_file: &Path,
    starttls: Option<StartTls>,
) -> Handshake {
    let mut cmd = Command::new(openssl);
    cmd.args(["s_client", "-showcerts", "-verify_return_error"])
        .args(["-connect", &addr.to_string()])
        .args(["-servername", name, "-verify_hostname", name])
        .arg("-CAfile")
        .arg(ca_file);
    if let Some(protocol) = starttls {
        cmd.args(["-starttls", protocol.name()]);
    }
    let out = run_bounded(cmd, BOUND);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let output = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Handshake {
        verified: out.status.success() && stdout.contains("Verify return code: 0 (ok)"),
        chain: pem_certificates(&stdout),
        output,
    }
}

/// The PEM certificate blocks in `text`, in order.
pub fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}

/// An HTTPS GET of `path` from `addr`, trusting only the certificates in
/// `ca_file` for the address itself: the status and the body. Bounded in
/// time.
pub fn https_get(addr: SocketAddr, path: &str, ca_file: &Path) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect_timeout(&addr, BOUND).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(BOUND))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    // Servers that close without close_notify end the body with an error
    // after it; what was read stands.
    let _ = tls.read_to_end(&mut response);
    parse_response(&String::from_utf8_lossy(&response))
}

/// The status and body of an HTTP/1.1 response (not chunked).
fn parse_response(text: &str) -> Result<(u16, String), String> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status: {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// A plain HTTP POST of a JSON `body` to `addr` (a management interface on
/// loopback): the status.
fn http_post(addr: SocketAddr, path: &str, body: &str) -> Result<u16, String> {
    let mut tcp = TcpStream::connect_timeout(&addr, BOUND).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(BOUND))
        .map_err(|e| e.to_string())?;
    write!(
        tcp,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    let _ = tcp.read_to_string(&mut response);
    parse_response(&response).map(|(status, _)| status)
}

/// Debian's `pebble` ACME server with `pebble-challtestsrv` as its DNS
/// resolver and a web server for the HTTP-01 webroot, all on free loopback
/// ports; every process is stopped when dropped.
pub struct Pebble {
    _pebble: Server,
    _challtestsrv: Server,
    _webroot_server: Server,
    /// The ACME directory URL (HTTPS).
    pub directory: String,
    /// Where the ACME server listens.
    pub addr: SocketAddr,
    /// The test root of pebble's listener certificate followed by pebble's
    /// issuing root: what a client gives `--ca-file` to reach the ACME
    /// server and to verify what it issues.
    pub ca_file: PathBuf,
    /// Pebble's issuing root alone (new at each start).
    pub issuer_root: PathBuf,
    /// The directory served on the port of pebble's HTTP-01 validation:
    /// `.well-known/acme-challenge/` goes below it.
    pub webroot: PathBuf,
    /// Where the webroot is served: the port pebble's HTTP-01 validation
    /// connects to on the address a test name resolves to.
    pub http01: SocketAddr,
    /// Where challtestsrv answers DNS (UDP and TCP).
    pub dns: SocketAddr,
}

/// The free ports one [`Pebble`] uses.
struct PebblePorts {
    acme: u16,
    management: u16,
    http01: u16,
    tls01: u16,
    dns: u16,
    dns_management: u16,
}

impl PebblePorts {
    fn new() -> PebblePorts {
        PebblePorts {
            acme: free_port(),
            management: free_port(),
            http01: free_port(),
            tls01: free_port(),
            dns: free_port_udp_tcp(),
            dns_management: free_port(),
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

impl Pebble {
    /// Starts everything under `dir`, with challtestsrv answering each of
    /// `names` (and nothing else) with 127.0.0.1. `None` (outside CI) when
    /// pebble or Python (the webroot's server) is missing.
    pub fn start(dir: &Path, names: &[&str]) -> Option<Pebble> {
        let pebble = require("pebble", "pebble")?;
        let challtestsrv = require("pebble-challtestsrv", "pebble")?;
        let python = require("python3", "python3")?;
        let ports = PebblePorts::new();
        let listener_root = dir.join("pebble-listener-root.pem");
        let config = pebble_config(dir, &ports, &listener_root);
        let dns_server = start_challtestsrv(&challtestsrv, dir, &ports, names);
        let webroot = dir.join("webroot");
        let web = start_webroot(&python, dir, &webroot, ports.http01);
        let mut cmd = Command::new(pebble);
        cmd.arg("-config")
            .arg(&config)
            .arg("-dnsserver")
            .arg(loopback(ports.dns).to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Deterministic runs: no nonce is rejected at random.
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        let addr = loopback(ports.acme);
        let server = Server::start(
            "pebble",
            cmd,
            &dir.join("pebble.log"),
            Ready::Tcp(addr),
            BOUND,
        );
        let issuer_root = dir.join("pebble-issuer-root.pem");
        let root = fetch_issuer_root(loopback(ports.management), &listener_root, &server);
        fs::write(&issuer_root, &root).expect("write pebble's root");
        let ca_file = dir.join("pebble-ca.pem");
        let listener = fs::read_to_string(&listener_root).expect("read the listener root");
        fs::write(&ca_file, format!("{listener}{root}")).expect("write the CA bundle");
        Some(Pebble {
            _pebble: server,
            _challtestsrv: dns_server,
            _webroot_server: web,
            directory: format!("https://{addr}/dir"),
            addr,
            ca_file,
            issuer_root,
            webroot,
            http01: loopback(ports.http01),
            dns: loopback(ports.dns),
        })
    }
}

/// Serves `webroot` (created) over HTTP on 127.0.0.1:`port` with Python's
/// `http.server`.
fn start_webroot(python: &Path, dir: &Path, webroot: &Path, port: u16) -> Server {
    fs::create_dir_all(webroot).expect("create the webroot");
    let mut cmd = Command::new(python);
    cmd.args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(webroot)
        .arg(port.to_string());
    Server::start(
        "webroot http.server",
        cmd,
        &dir.join("webroot.log"),
        Ready::Tcp(loopback(port)),
        BOUND,
    )
}

/// Writes pebble's configuration with a listener certificate for
/// 127.0.0.1 and localhost made by a new [`TestCa`], whose root goes to
/// `listener_root`; returns the configuration's path.
fn pebble_config(dir: &Path, ports: &PebblePorts, listener_root: &Path) -> PathBuf {
    let ca = TestCa::new();
    ca.write_root(listener_root);
    let leaf = ca
        .intermediate(Validity::CA)
        .leaf(&["localhost", "127.0.0.1"], Validity::LEAF);
    let files = leaf.write(dir, "pebble-listener");
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": loopback(ports.acme).to_string(),
            "managementListenAddress": loopback(ports.management).to_string(),
            "certificate": files.combined,
            "privateKey": files.key,
            "httpPort": ports.http01,
            "tlsPort": ports.tls01,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }
    });
    let path = dir.join("pebble-config.json");
    fs::write(&path, config.to_string()).expect("write pebble's configuration");
    path
}

/// Starts challtestsrv as a DNS server only, answering `names` with
/// 127.0.0.1 and every other name with nothing.
fn start_challtestsrv(program: &Path, dir: &Path, ports: &PebblePorts, names: &[&str]) -> Server {
    let management = loopback(ports.dns_management);
    let mut cmd = Command::new(program);
    cmd.arg("-dns01")
        .arg(loopback(ports.dns).to_string())
        .arg("-management")
        .arg(management.to_string())
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-defaultIPv4", "", "-defaultIPv6", ""]);
    let server = Server::start(
        "pebble-challtestsrv",
        cmd,
        &dir.join("challtestsrv.log"),
        Ready::Tcp(management),
        BOUND,
    );
    for name in names {
        let body = serde_json::json!({ "host": name, "addresses": ["127.0.0.1"] });
        let status = http_post(management, "/add-a", &body.to_string());
        assert_eq!(status, Ok(200), "challtestsrv add-a {name}");
    }
    server
}

/// Pebble's issuing root from its management interface, waiting (bounded)
/// until that answers.
fn fetch_issuer_root(management: SocketAddr, listener_root: &Path, pebble: &Server) -> String {
    let start = Instant::now();
    loop {
        match https_get(management, "/roots/0", listener_root) {
            Ok((200, body)) if body.contains("BEGIN CERTIFICATE") => return body,
            other if start.elapsed() > BOUND => panic!(
                "pebble's root was not served within {BOUND:?}: {other:?}; its log:\n{}",
                pebble.log_text()
            ),
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}
