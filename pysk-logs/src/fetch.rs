//! `pysk-logs fetch`: logs that servers mailed, from an IMAP mailbox into
//! the spool's inbox.
//!
//! The `imap` crate speaks IMAP over a stream we make: plain TCP, TLS from
//! the start (`imaps://`) or after STARTTLS (`imap://`), TLS by rustls with
//! the system's roots or `--ca-file`. `mail-parser` takes each message
//! apart. A message's logs are written to `inbox/` atomically, named from
//! the mailbox's UIDVALIDITY, the message's UID and the part number, so a
//! rerun after a crash writes the same names again instead of duplicates;
//! only once they are durable is the message marked `\Seen` (or moved).
//! Messages that do not match are never touched: they are read with
//! `BODY.PEEK[]`, which leaves their flags alone.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde::Serialize;

use pysk_common::atomic;
use pysk_common::error::cause;
use pysk_common::exit::Outcome;
use pysk_common::net::plaintext_allowed;
use pysk_common::report::Reporter;
use pysk_common::secret::Secret;

use crate::error::LogsError;
use crate::{failpoint, format, input, time};

/// The largest message taken apart; log mails are far smaller.
const MAX_MESSAGE: u32 = 256 << 20;

/// How long to wait for the server at each step.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where the mail is: `imap[s]://USER@HOST[:PORT]/MAILBOX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// TLS from the start (`imaps`).
    pub tls: bool,
    /// The login name.
    pub user: String,
    /// Host name or address.
    pub host: String,
    /// Port (143 or 993 unless given).
    pub port: u16,
    /// The mailbox (`INBOX` unless given).
    pub mailbox: String,
}

impl std::str::FromStr for ImapUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<ImapUrl, String> {
        let bad = |why: &str| format!("{why}; expected imap[s]://USER@HOST[:PORT]/MAILBOX");
        let (tls, rest) = if let Some(r) = text.strip_prefix("imaps://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("imap://") {
            (false, r)
        } else {
            return Err(bad("not an imap:// or imaps:// URL"));
        };
        let (authority, mailbox) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hostport) = authority.rsplit_once('@').ok_or_else(|| bad("no user"))?;
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, p) = r.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h, p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None if tls => 993,
            None => 143,
        };
        let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
        let mailbox = percent_decode(mailbox).ok_or_else(|| bad("bad %-escape in the mailbox"))?;
        let printable = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_control() || c == '"');
        if !printable(&user) || host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad("empty or unusable user or host"));
        }
        Ok(ImapUrl {
            tls,
            user,
            host: host.to_owned(),
            port,
            mailbox: if mailbox.is_empty() {
                "INBOX".into()
            } else if printable(&mailbox) {
                mailbox
            } else {
                return Err(bad("unusable mailbox name"));
            },
        })
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What `fetch` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The mailbox.
    pub url: ImapUrl,
    /// The password.
    pub password: Secret,
    /// Only messages whose Subject contains this.
    pub subject_contains: String,
    /// Move fetched messages here instead of marking them `\Seen`.
    pub done_mailbox: Option<String>,
    /// A CA certificate (PEM) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Allow a login without TLS to a host that is not loopback.
    pub insecure_plaintext: bool,
    /// The spool's inbox.
    pub inbox: PathBuf,
}

/// What a fetch did, as printed by `--json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Matching unseen messages found.
    pub messages: usize,
    /// Files written to the inbox (names inside it).
    pub files: Vec<String>,
    /// Messages that could not be used (reported, left unseen).
    pub malformed: usize,
}

/// The summary line printed on stderr.
pub fn describe(summary: &Summary) -> String {
    format!(
        "fetch: {} message(s), {} file(s) saved, {} unusable",
        summary.messages,
        summary.files.len(),
        summary.malformed
    )
}

/// Any stream the IMAP session runs over.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A failure of the server at `url`, or of the way to it.
fn service(url: &ImapUrl, why: impl std::fmt::Display) -> LogsError {
    LogsError::Service {
        host: format!("{}:{}", url.host, url.port),
        reason: why.to_string(),
    }
}

/// [`service`] for an I/O error, worded without the os error number.
fn service_io(url: &ImapUrl, err: &std::io::Error) -> LogsError {
    service(url, cause(err))
}

/// [`service`] for an error of the IMAP session.
fn service_imap(url: &ImapUrl, context: &str, err: &imap::Error) -> LogsError {
    let why = match err {
        imap::Error::Io(e) => cause(e),
        other => other.to_string(),
    };
    if context.is_empty() {
        service(url, why)
    } else {
        service(url, format!("{context}: {why}"))
    }
}

/// The TLS client configuration: the roots of `--ca-file` or the system
/// (see [`pysk_common::tls::roots`]).
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, LogsError> {
    let mut roots = RootCertStore::empty();
    for cert in pysk_common::tls::roots(ca_file)? {
        match (roots.add(cert), ca_file) {
            (Ok(()), _) => {}
            (Err(e), Some(path)) => {
                return Err(pysk_common::Error::CaFile {
                    path: path.to_owned(),
                    reason: format!("unusable CA certificate: {e}"),
                }
                .into());
            }
            // A system root rustls cannot use is simply not trusted.
            (Err(_), None) => {}
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| pysk_common::Error::Internal(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn wrap_tls(
    url: &ImapUrl,
    options: &Options,
    tcp: TcpStream,
) -> Result<Box<dyn Stream>, LogsError> {
    let name = ServerName::try_from(url.host.clone()).map_err(|e| service(url, e))?;
    let conn = ClientConnection::new(tls_config(options.ca_file.as_deref())?, name)
        .map_err(|e| service(url, e))?;
    let mut tls = StreamOwned::new(conn, tcp);
    // Complete the handshake now, so a bad certificate is reported as such.
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| service(url, format!("TLS: {}", cause(&e))))?;
    }
    Ok(Box::new(tls))
}

/// Connects and returns a stream ready for the greeting (or, after
/// STARTTLS, for commands) and whether the greeting is still to be read.
fn connect(options: &Options) -> Result<(Box<dyn Stream>, bool), LogsError> {
    let url = &options.url;
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| service_io(url, &e))?
        .collect();
    let mut last = None;
    let tcp = addrs
        .iter()
        .find_map(|a| match TcpStream::connect_timeout(a, TIMEOUT) {
            Ok(s) => Some(s),
            Err(e) => {
                last = Some(e);
                None
            }
        });
    let tcp = tcp.ok_or_else(|| service(url, last.map_or("no address".into(), |e| cause(&e))))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| service_io(url, &e))?;
    tcp.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| service_io(url, &e))?;
    if url.tls {
        return Ok((wrap_tls(url, options, tcp)?, true));
    }
    // imap://: read the greeting ourselves to see whether STARTTLS is
    // offered, and if so switch to TLS before any credentials are sent.
    let mut reader = BufReader::new(tcp.try_clone().map_err(|e| service_io(url, &e))?);
    let mut greeting = String::new();
    reader
        .read_line(&mut greeting)
        .map_err(|e| service_io(url, &e))?;
    if !greeting.starts_with("* OK") {
        return Err(service(
            url,
            format!("unexpected greeting {:?}", greeting.trim_end()),
        ));
    }
    if greeting.contains("STARTTLS") {
        let mut tcp = tcp;
        tcp.write_all(b"s1 STARTTLS\r\n")
            .map_err(|e| service_io(url, &e))?;
        let mut reply = String::new();
        (&mut reader)
            .take(8192)
            .read_line(&mut reply)
            .map_err(|e| service_io(url, &e))?;
        if !reply.starts_with("s1 OK") {
            return Err(service(
                url,
                format!("STARTTLS refused: {}", reply.trim_end()),
            ));
        }
        return Ok((wrap_tls(url, options, tcp)?, false));
    }
    if !plaintext_allowed(&url.host, options.insecure_plaintext) {
        return Err(service(
            url,
            "the server offers no STARTTLS; a password goes in plain text only to a loopback \
             address or with --insecure-plaintext",
        ));
    }
    Ok((Box::new(tcp), false))
}

/// How much of a part is looked at to tell whether it is a log: its first
/// bytes and, when compressed, the first bytes of its content.
const SAMPLE: usize = 1 << 20;

/// What a message carries: its logs by part number, and what was left out
/// (each a sentence for a warning).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The logs, by part number.
    pub logs: Vec<(usize, Vec<u8>)>,
    /// The parts left out, and why.
    pub left_out: Vec<String>,
}

/// The log files a message carries, by part number: its text/plain bodies
/// (line ends made Unix again, the last line ended) and every attachment,
/// of any type, whose content (decompressed when it is gzip, bzip2, xz or
/// zstd) has a log line. A text body beside log attachments may be the
/// sender's cover note ("log attached"): it is kept unless no line of it is
/// a log line (its bad lines then go to `rejected/` through split). What is
/// left out is named in [`Found::left_out`].
pub fn logs_in(raw: &[u8]) -> Found {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Found::default();
    };
    let mut found = Found::default();
    let mut bodies = Vec::new();
    for (i, part) in message.parts.iter().enumerate() {
        let is_attachment = part
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        let bytes = match &part.body {
            PartType::Text(text) if is_plain(part) && !is_attachment => {
                if !text.trim().is_empty() {
                    bodies.push((i, unix_text(text)));
                }
                continue;
            }
            PartType::Text(text) if is_plain(part) => unix_text(text),
            PartType::Text(text) if is_attachment => text.as_bytes().to_vec(),
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.to_vec(),
            _ => continue,
        };
        if is_log(&bytes) {
            found.logs.push((i, bytes));
        } else {
            found.left_out.push(format!(
                "part {i} ({}): an attachment without a log line in it; left out",
                describe_part(part)
            ));
        }
    }
    let beside_logs = !found.logs.is_empty();
    for (i, text) in bodies {
        if !beside_logs || is_log(&text) {
            found.logs.push((i, text));
        } else {
            found.left_out.push(format!(
                "part {i}: a text body beside the log attachments without a log line in it; \
                 left out as a cover note"
            ));
        }
    }
    found.logs.sort_by_key(|(i, _)| *i);
    found
}

/// A text part as a log file: line ends made Unix again, the last line
/// ended (MIME gives the last line's end to the boundary).
fn unix_text(text: &str) -> Vec<u8> {
    let mut log = text.replace("\r\n", "\n");
    if !log.ends_with('\n') {
        log.push('\n');
    }
    log.into_bytes()
}

/// A part's type and file name, as a warning names it.
fn describe_part(part: &mail_parser::MessagePart<'_>) -> String {
    let kind = part.content_type().map_or("text/plain".to_owned(), |ct| {
        format!("{}/{}", ct.c_type, ct.subtype().unwrap_or("?"))
    });
    match part.attachment_name() {
        Some(name) => format!("{kind} {name:?}"),
        None => kind,
    }
}

/// Whether a part is text/plain (or has no type, which means it).
fn is_plain(part: &mail_parser::MessagePart<'_>) -> bool {
    part.content_type().is_none_or(|ct| {
        ct.c_type.eq_ignore_ascii_case("text")
            && ct.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain"))
    })
}

/// Whether `bytes` is a log: a line in its first [`SAMPLE`] bytes (of the
/// content, when compressed) is a line `split` accepts the format of. A
/// compressed part that does not decompress at all is a log too: split
/// reads it, finds it broken and reports it, rather than it being dropped
/// here without a word.
fn is_log(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(SAMPLE)];
    if input::compression(head).is_none() {
        return any_log_line(head);
    }
    let mut content = Vec::new();
    if let Ok(reader) = input::sniff(std::io::Cursor::new(head.to_vec())) {
        // The sample is cut, so its stream ends early: what came before
        // the error is what is looked at.
        let _ = reader.take(SAMPLE as u64).read_to_end(&mut content);
    }
    content.is_empty() || any_log_line(&content)
}

/// Whether any line of `text` is a line `split` accepts the format of.
fn any_log_line(text: &[u8]) -> bool {
    let mut clock = time::DayCache::default();
    let mut scratch = Vec::new();
    text.split(|&b| b == b'\n')
        .any(|line| format::parse(line, &mut clock, &mut scratch).is_ok())
}

/// Quotes `text` as an IMAP quoted string.
fn imap_quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An IMAP session over any stream.
type Session = imap::Session<Box<dyn Stream>>;

/// Runs `fetch`: logs in, takes the matching unseen messages oldest first,
/// saves each one's logs and only then marks it seen (or moves it).
pub fn run(options: &Options, report: &Reporter) -> Result<(Summary, Outcome), LogsError> {
    let url = &options.url;
    let mut session = log_in(options)?;
    let validity = select(&mut session, url)?;
    let uids = unseen(&mut session, options)?;
    let mut summary = Summary {
        messages: uids.len(),
        ..Summary::default()
    };
    for uid in uids {
        let (taken, left_out) = take(&mut session, options, validity, uid)?;
        for why in left_out {
            report.warn(format!("{}: message UID {uid}: {why}", url.mailbox));
        }
        match taken {
            Taken::Saved(files) => summary.files.extend(files),
            Taken::Unusable(why) => {
                report.warn(format!(
                    "{}: message UID {uid}: {why}; left unseen",
                    url.mailbox
                ));
                summary.malformed += 1;
            }
        }
    }
    let _ = session.logout();
    let outcome = if summary.malformed == 0 {
        Outcome::Success
    } else {
        Outcome::Partial
    };
    Ok((summary, outcome))
}

/// Connects (TLS as [`connect`] decides) and logs in.
fn log_in(options: &Options) -> Result<Session, LogsError> {
    let url = &options.url;
    let (stream, greeting) = connect(options)?;
    let mut client = imap::Client::new(stream);
    if greeting {
        client
            .read_greeting()
            .map_err(|e| service_imap(url, "", &e))?;
    }
    client
        .login(&url.user, options.password.expose())
        .map_err(|(e, _)| service_imap(url, &format!("login as {}", url.user), &e))
}

/// Selects the mailbox and returns its UIDVALIDITY. The inbox names carry
/// it, so that a rerun writes the same names; a server that does not send
/// it (RFC 3501 says it must) gets nothing fetched rather than names that
/// could collide.
fn select(session: &mut Session, url: &ImapUrl) -> Result<u32, LogsError> {
    let mailbox = session
        .select(&url.mailbox)
        .map_err(|e| service_imap(url, &url.mailbox, &e))?;
    mailbox.uid_validity.ok_or_else(|| {
        service(
            url,
            format!(
                "{}: the server sent no UIDVALIDITY for the mailbox; nothing fetched",
                url.mailbox
            ),
        )
    })
}

/// The UIDs of the unseen messages whose Subject matches, oldest first.
fn unseen(session: &mut Session, options: &Options) -> Result<Vec<u32>, LogsError> {
    let query = format!("UNSEEN SUBJECT {}", imap_quoted(&options.subject_contains));
    let mut uids: Vec<u32> = session
        .uid_search(&query)
        .map_err(|e| service_imap(&options.url, "", &e))?
        .into_iter()
        .collect();
    uids.sort_unstable();
    Ok(uids)
}

/// How taking one message ended.
enum Taken {
    /// Its logs were saved (these names in the inbox) and it was marked.
    Saved(Vec<String>),
    /// It cannot be used, for this reason; it is left unseen.
    Unusable(String),
}

/// Takes message `uid`: its size checked, its logs saved to the inbox,
/// then the message marked seen (or moved). Also returns the parts left
/// out as not logs, for warnings.
fn take(
    session: &mut Session,
    options: &Options,
    validity: u32,
    uid: u32,
) -> Result<(Taken, Vec<String>), LogsError> {
    let url = &options.url;
    // The size first: a message is held in memory whole while it is taken
    // apart, so one that is too big is reported and left alone.
    let size = size(session, url, uid)?;
    if size > MAX_MESSAGE {
        let why = format!("{size} bytes, more than {} MiB", MAX_MESSAGE >> 20);
        return Ok((Taken::Unusable(why), Vec::new()));
    }
    let fetched = session
        .uid_fetch(uid.to_string(), "BODY.PEEK[]")
        .map_err(|e| service_imap(url, "", &e))?;
    let Some(raw) = fetched.iter().find_map(|f| f.body()) else {
        return Ok((Taken::Unusable("no body".to_owned()), Vec::new()));
    };
    let found = logs_in(raw);
    if found.logs.is_empty() {
        let why = "no log in it (no text/plain body, no attachment with log lines)";
        return Ok((Taken::Unusable(why.to_owned()), found.left_out));
    }
    let files = save(&options.inbox, validity, uid, found.logs)?;
    failpoint::reached("fetch-before-flag");
    mark(session, options, uid)?;
    Ok((Taken::Saved(files), found.left_out))
}

/// The size of message `uid`. A server that does not send it breaks the
/// protocol (RFC 3501 makes `RFC822.SIZE` a fetch item it must answer):
/// that ends the run, the message and those after it left unseen, rather
/// than a size guessed that would pass the limit.
fn size(session: &mut Session, url: &ImapUrl, uid: u32) -> Result<u32, LogsError> {
    session
        .uid_fetch(uid.to_string(), "RFC822.SIZE")
        .map_err(|e| service_imap(url, "", &e))?
        .iter()
        .find_map(|f| f.size)
        .ok_or_else(|| {
            service(
                url,
                format!(
                    "{}: message UID {uid}: the server sent no RFC822.SIZE; \
                     it and the messages after it are left unseen",
                    url.mailbox
                ),
            )
        })
}

/// Writes the `logs` of message `uid` atomically into `inbox`, named so
/// that a rerun writes the same names; returns the names.
fn save(
    inbox: &Path,
    validity: u32,
    uid: u32,
    logs: Vec<(usize, Vec<u8>)>,
) -> Result<Vec<String>, LogsError> {
    let mut names = Vec::with_capacity(logs.len());
    for (part, bytes) in logs {
        let name = format!("imap-{validity}-{uid}-{part}.log");
        atomic::replace(&inbox.join(&name), &bytes, atomic::Options::default())?;
        names.push(name);
    }
    Ok(names)
}

/// Marks message `uid` `\Seen`, or moves it to `--done-mailbox`.
fn mark(session: &mut Session, options: &Options, uid: u32) -> Result<(), LogsError> {
    match &options.done_mailbox {
        Some(done) => session.uid_mv(uid.to_string(), done),
        None => session
            .uid_store(uid.to_string(), "+FLAGS.SILENT (\\Seen)")
            .map(|_| ()),
    }
    .map_err(|e| service_imap(&options.url, &format!("marking UID {uid}"), &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_escapes() {
        let u: ImapUrl = "imaps://logs%40example.org@mail.example.org/Logs%20In"
            .parse()
            .expect("url");
        assert_eq!(
            u,
            ImapUrl {
                tls: true,
                user: "logs@example.org".into(),
                host: "mail.example.org".into(),
                port: 993,
                mailbox: "Logs In".into()
            }
        );
        let u: ImapUrl = "imap://logs@[::1]:1143".parse().expect("url");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.mailbox.as_str()),
            (false, "::1", 1143, "INBOX")
        );
        for bad in [
            "http://x@y/",
            "imap://host/INBOX",
            "imap://u@h:port/",
            "imap://u@h/%zz",
            "imap://@h/",
        ] {
            assert!(bad.parse::<ImapUrl>().is_err(), "{bad}");
        }
    }

    /// A scripted IMAP server on a loopback port, for one session: a
    /// mailbox with UIDVALIDITY 7 holding one matching message, UID 5, of
    /// which a `RFC822.SIZE` fetch gets `size_reply`. Returns the port and
    /// the commands it was sent, once the session is over.
    fn scripted_server(size_reply: &'static str) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut out = stream.try_clone().expect("clone");
            let mut commands = Vec::new();
            out.write_all(b"* OK scripted server ready\r\n")
                .expect("greet");
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (tag, command) = line.split_once(' ').unwrap_or((&line, ""));
                let upper = command.to_ascii_uppercase();
                let reply = if upper.starts_with("LOGIN") {
                    String::new()
                } else if upper.starts_with("SELECT") {
                    "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n".to_owned()
                } else if upper.starts_with("UID SEARCH") {
                    "* SEARCH 5\r\n".to_owned()
                } else if upper.contains("RFC822.SIZE") {
                    format!("{size_reply}\r\n")
                } else if upper.starts_with("LOGOUT") {
                    "* BYE\r\n".to_owned()
                } else {
                    commands.push(command.to_owned());
                    out.write_all(format!("{tag} NO not scripted\r\n").as_bytes())
                        .expect("reply");
                    continue;
                };
                commands.push(command.to_owned());
                out.write_all(format!("{reply}{tag} OK done\r\n").as_bytes())
                    .expect("reply");
                if upper.starts_with("LOGOUT") {
                    break;
                }
            }
            commands
        });
        (port, server)
    }

    #[test]
    fn a_message_without_a_size_is_the_servers_fault_and_stays_unseen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").expect("pw");
        std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).expect("inbox");
        let (port, server) = scripted_server("* 1 FETCH (UID 5)");
        let options = Options {
            url: format!("imap://logs@127.0.0.1:{port}/INBOX")
                .parse()
                .expect("url"),
            password: pysk_common::secret::read_file(&pw).expect("password"),
            subject_contains: "access.log".into(),
            done_mailbox: None,
            ca_file: None,
            insecure_plaintext: false,
            inbox: inbox.clone(),
        };
        let report = Reporter::new("pysk-logs", pysk_common::report::Level::Quiet);
        let err = run(&options, &report).expect_err("no size");
        assert_eq!(
            err.to_string(),
            format!(
                "127.0.0.1:{port}: INBOX: message UID 5: the server sent no RFC822.SIZE; \
                 it and the messages after it are left unseen"
            )
        );
        assert_eq!(
            pysk_common::exit::ToolError::exit_code(&err),
            pysk_common::exit::UNAVAILABLE
        );
        // The connection is dropped with the error; the server sees it end.
        let commands = server.join().expect("server");
        assert!(
            commands
                .iter()
                .all(|c| !c.contains("BODY") && !c.contains("STORE") && !c.contains("MOVE")),
            "neither read nor marked: {commands:?}"
        );
        assert!(
            commands.iter().any(|c| c.contains("RFC822.SIZE")),
            "{commands:?}"
        );
        assert_eq!(std::fs::read_dir(&inbox).expect("inbox").count(), 0);
    }

    /// A multipart message: a text/plain body, then `attachments`.
    fn mail(body: &str, attachments: &str) -> Vec<u8> {
        format!(
            "Subject: access.log\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
{body}\r\n{attachments}\
--b\r\nContent-Type: text/html\r\n\r\n<p>no</p>\r\n--b--\r\n"
        )
        .into_bytes()
    }

    /// A gzip attachment holding [`LOG_LINE`].
    const GZIP_PART: &str = "--b\r\nContent-Type: application/gzip; name=a.log.gz\r\n\
Content-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n\
H4sIAAAAAAACAzO0NNIz0DPSM1TQBcJoQ3N938RKfSMDQ1MrQwMrA1MrA2MFbQMgiFVQcncNUdBX8AgJCdA31DNUUjAyMFAwVFDSVQJhLgAiCVCySgAAAA==\r\n";

    const LOG_LINE: &str = "192.0.2.1 - - [17/May/2015:10:05:03 +0000] \
\"GET / HTTP/1.1\" 200 1 \"-\" \"-\"";

    #[test]
    fn a_body_is_a_cover_note_beside_attachments_only_if_no_line_is_a_log_line() {
        // Alone, the body is the log (`mail -s access.log < access.log`).
        let found = logs_in(&mail("line one=3D1\r\nline two", ""));
        assert_eq!(found.logs, [(1, b"line one=1\nline two\n".to_vec())]);
        assert!(found.left_out.is_empty());
        // Beside a log attachment, "log attached" is a cover note, named.
        let found = logs_in(&mail("Log attached.\r\n\r\n-- \r\nroot", GZIP_PART));
        assert_eq!(found.logs.len(), 1, "{found:?}");
        assert_eq!(found.logs[0].0, 2);
        assert!(input::is_gzip(&found.logs[0].1));
        assert_eq!(
            found.left_out,
            [
                "part 1: a text body beside the log attachments without a log line in it; \
              left out as a cover note"
            ]
        );
        // A body with one log line is a log, its other lines and all.
        let body = format!("Log of web3:\r\n{LOG_LINE}\r\n\r\n{}", &LOG_LINE[..30]);
        let found = logs_in(&mail(&body, GZIP_PART));
        assert_eq!(found.logs.len(), 2, "{found:?}");
        assert_eq!(
            found.logs[0].1,
            format!("Log of web3:\n{LOG_LINE}\n\n{}\n", &LOG_LINE[..30]).into_bytes()
        );
        assert!(input::is_gzip(&found.logs[1].1));
        assert!(found.left_out.is_empty());
        // A text/plain attachment is a log attachment too.
        let text_part = format!(
            "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; \
             filename=access.log\r\n\r\n{LOG_LINE}\r\n"
        );
        let found = logs_in(&mail("see the attachment", &text_part));
        assert_eq!(found.logs, [(2, format!("{LOG_LINE}\n").into_bytes())]);
        assert!(
            logs_in(b"Subject: x\r\nContent-Type: text/html\r\n\r\n<p>only html</p>")
                .logs
                .is_empty()
        );
    }

    #[test]
    fn an_attachment_of_any_type_is_a_log_by_its_lines_and_named_when_it_is_not() {
        let part = |ctype: &str, name: &str, bytes: &[u8]| {
            format!(
                "--b\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; \
                 filename={name}\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
            )
        };
        let log = format!("{LOG_LINE}\n");
        let attachments = part("application/octet-stream", "access.log", log.as_bytes())
            + &part("application/pdf", "report.pdf", b"%PDF-1.4\n%%EOF\n");
        let found = logs_in(&mail("Log attached.", &attachments));
        assert_eq!(found.logs, [(2, log.into_bytes())]);
        assert_eq!(
            found.left_out,
            [
                "part 3 (application/pdf \"report.pdf\"): an attachment without a log line in \
                 it; left out",
                "part 1: a text body beside the log attachments without a log line in it; \
                 left out as a cover note"
            ]
        );
        // A compressed attachment is judged by its content; one that does
        // not decompress at all is kept, for split to report.
        let gz_text = {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(b"not a log\n").expect("gzip");
            enc.finish().expect("gzip")
        };
        let broken = [0x1f, 0x8b, 0xff, 0xff];
        let found = logs_in(&mail(
            "x",
            &(part("application/gzip", "a.gz", &gz_text)
                + &part("application/gzip", "b.gz", &broken)),
        ));
        assert_eq!(found.logs, [(3, broken.to_vec())]);
        assert_eq!(
            found.left_out[0],
            "part 2 (application/gzip \"a.gz\"): an attachment without a log line in it; \
             left out"
        );
    }

    #[test]
    fn attachments_in_every_compression_split_reads_are_logs() {
        let zst = zstd::stream::encode_all(format!("{LOG_LINE}\n").as_bytes(), 1).expect("zstd");
        let part = format!(
            "--b\r\nContent-Type: application/zstd\r\nContent-Disposition: attachment\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &zst)
        );
        let found = logs_in(&mail("attached", &part));
        assert_eq!(found.logs, [(2, zst)]);
    }
}
