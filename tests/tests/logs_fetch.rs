//! End-to-end tests of `pysk-logs fetch` against Dovecot: messages are put
//! into the mailbox over IMAP (with Python's imaplib, an independent
//! client), fetched by pysk-logs over STARTTLS, IMAPS or plain loopback,
//! and the inbox bytes and the flags afterwards are checked exactly.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pysk_tests::dovecot::{Dovecot, PASSWORD, USER};
use pysk_tests::{TestCommand, require, scratch, secret_file, tool};

/// The independent IMAP client: `append FILE FLAGS`, `flags`,
/// `uidvalidity`, one command per run.
const IMAP_TOOL: &str = r#"
import imaplib, sys
port, user, password, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
if cmd == "append":
    flags = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] else None
    typ, _ = m.append("INBOX", flags, None, open(sys.argv[5], "rb").read())
    assert typ == "OK", typ
elif cmd == "flags":
    m.select("INBOX", readonly=True)
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    for item in data:
        print(item.decode())
elif cmd == "create":
    typ, _ = m.create(sys.argv[5])
    assert typ == "OK", typ
elif cmd == "count":
    typ, data = m.select(sys.argv[5], readonly=True)
    print(data[0].decode())
elif cmd == "uidvalidity":
    typ, data = m.status("INBOX", "(UIDVALIDITY)")
    print(data[0].decode().split("UIDVALIDITY ")[1].rstrip(")"))
m.logout()
"#;

fn imap_tool(port: u16, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(IMAP_TOOL)
        .arg(port.to_string())
        .args([USER, PASSWORD])
        .args(args)
        .output()
        .expect("python3 imaplib");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn append(dir: &Path, port: u16, name: &str, message: &[u8], flags: &str) {
    let path = dir.join(name);
    fs::write(&path, message).expect("message file");
    imap_tool(port, &["append", path.to_str().expect("utf-8"), flags]);
}

/// UID → flags, as the server reports them.
fn flags(port: u16) -> Vec<(u32, String)> {
    imap_tool(port, &["flags"])
        .lines()
        .map(|l| {
            // 1 (UID 1 FLAGS (\Seen))
            let uid = l
                .split("UID ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .expect("uid");
            let flags = l
                .split("FLAGS (")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .unwrap_or("");
            (uid.parse().expect("uid number"), flags.to_owned())
        })
        .collect()
}

fn password_file(dir: &Path) -> PathBuf {
    let path = dir.join("imap-password");
    secret_file(&path, &format!("{PASSWORD}\n"));
    path
}

/// `pysk-logs fetch` from `url` into `spool`, trusting `ca` if given.
fn fetch(url: &str, spool: &Path, pw: &Path, ca: Option<&Path>) -> TestCommand {
    let cmd = tool("pysk-logs")
        .args(["fetch", "--imap-url", url, "--password-file"])
        .arg(pw)
        .arg("--spool")
        .arg(spool);
    match ca {
        Some(ca) => cmd.arg("--ca-file").arg(ca),
        None => cmd,
    }
}

fn inbox(spool: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(spool.join("inbox"))
        .expect("inbox")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    out.sort();
    out
}

const LOG1: &str = "www.example.org 192.0.2.1 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"curl\"\n\
www.example.org 192.0.2.2 - - [17/May/2015:10:05:04 +0000] \"GET /a HTTP/1.1\" 404 7 \"-\" \"curl\"\n";

/// `text` through a real compressing program (`gzip -n -c`, `xz -c -q`).
fn compressed(program: &str, args: &[&str], text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect(program);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    child.wait_with_output().expect(program).stdout
}

/// `text` compressed by the real `gzip`.
fn gzipped(text: &str) -> Vec<u8> {
    compressed("gzip", &["-n", "-c"], text)
}

fn base64(bytes: &[u8]) -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys,base64; sys.stdout.write(base64.encodebytes(sys.stdin.buffer.read()).decode())"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(bytes)?;
            c.wait_with_output()
        })
        .expect("python3 base64");
    String::from_utf8(out.stdout).expect("ascii")
}

#[test]
fn fetches_logs_marks_them_seen_and_leaves_everything_else_alone() {
    if require("python3", "python3").is_none() {
        return;
    }
    let dir = scratch();
    let Some(dovecot) = Dovecot::start(&dir.path().join("dovecot"), true) else {
        return;
    };
    let port = dovecot.imap_port;
    let msgs = dir.path().join("msgs");
    fs::create_dir_all(&msgs).expect("mkdir");
    let gz = gzipped(
        "www.example.org 192.0.2.9 - - [17/May/2015:11:00:00 +0000] \"GET /gz HTTP/1.1\" 200 1 \"-\" \"x\"\n",
    );
    // UID 1: a log in a plain body.
    append(
        &msgs,
        port,
        "1",
        format!(
            "From: web1@example.org\r\nSubject: web1 access.log\r\n\r\n{}",
            LOG1.replace('\n', "\r\n")
        )
        .as_bytes(),
        "",
    );
    // UID 2: multipart with a base64 gzip attachment and an HTML part.
    append(&msgs, port, "2", format!(
        "From: web2@example.org\r\nSubject: web2 access.log 2026-11-24\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>see attachment</p>\r\n\
         --b1\r\nContent-Type: application/gzip; name=\"access.log.gz\"\r\nContent-Disposition: attachment; filename=\"access.log.gz\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n", base64(&gz).replace('\n', "\r\n")).as_bytes(), "");
    // UID 3: quoted-printable body.
    append(&msgs, port, "3", b"From: web3@example.org\r\nSubject: access.log\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
www.example.org 192.0.2.3 - - [17/May/2015:10:06:00 +0000] \"GET /q?a=3Db HTTP/1.1\" 200 1 \"-\" \"a very long user agent string that quoted-printable wr=\r\naps\"\r\n", "");
    // UID 4: not a log mail.
    append(
        &msgs,
        port,
        "4",
        b"From: boss@example.org\r\nSubject: lunch?\r\n\r\naccess.log is not in my subject\r\n",
        "",
    );
    // UID 5: a log mail already seen.
    append(
        &msgs,
        port,
        "5",
        b"From: web1@example.org\r\nSubject: old access.log\r\n\r\nold line\r\n",
        "(\\Seen)",
    );
    // UID 6: a log mail without any log in it.
    append(&msgs, port, "6", b"From: web4@example.org\r\nSubject: access.log\r\nContent-Type: text/html\r\n\r\n<b>oops</b>\r\n", "");

    let spool = dir.path().join("spool");
    fs::create_dir_all(spool.join("inbox")).expect("mkdir");
    let pw = password_file(dir.path());
    let validity = imap_tool(port, &["uidvalidity"]).trim().to_owned();
    let url = format!("imap://{USER}@127.0.0.1:{port}/INBOX");
    // The unusable message is reported.
    let out = fetch(&url, &spool, &pw, Some(&dovecot.ca_file)).fails_with(1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("message UID 6: no log in it"), "{err}");
    assert!(!err.contains(PASSWORD));

    let expected = vec![
        (format!("imap-{validity}-1-0.log"), LOG1.as_bytes().to_vec()),
        (format!("imap-{validity}-2-2.log"), gz.clone()),
        (
            format!("imap-{validity}-3-0.log"),
            b"www.example.org 192.0.2.3 - - [17/May/2015:10:06:00 +0000] \"GET /q?a=b HTTP/1.1\" 200 1 \"-\" \"a very long user agent string that quoted-printable wraps\"\n".to_vec(),
        ),
    ];
    assert_eq!(inbox(&spool), expected);
    assert_eq!(
        flags(port),
        [
            (1, "\\Seen".to_owned()),
            (2, "\\Seen".to_owned()),
            (3, "\\Seen".to_owned()),
            (4, String::new()),
            (5, "\\Seen".to_owned()),
            (6, String::new()),
        ]
    );

    // A crash between saving a message's logs and flagging it: the rerun
    // writes the same file again, not a second copy.
    append(
        &msgs,
        port,
        "7",
        b"Subject: access.log\r\n\r\nline seven\r\n",
        "",
    );
    let out = fetch(&url, &spool, &pw, Some(&dovecot.ca_file))
        .env("PYSK_LOGS_FAILPOINT", "fetch-before-flag")
        .output();
    assert!(!out.status.success());
    assert_eq!(
        flags(port)[6],
        (7, String::new()),
        "not flagged before the crash"
    );
    // UID 6 is still reported.
    fetch(&url, &spool, &pw, Some(&dovecot.ca_file)).fails_with(1);
    let files = inbox(&spool);
    assert_eq!(files.len(), 4);
    assert_eq!(
        files[3],
        (format!("imap-{validity}-7-0.log"), b"line seven\n".to_vec())
    );
    assert_eq!(flags(port)[6], (7, "\\Seen".to_owned()));

    // IMAPS with the test CA works; without it the certificate is refused.
    append(
        &msgs,
        port,
        "8",
        b"Subject: access.log\r\n\r\nline eight\r\n",
        "",
    );
    let tls_url = format!("imaps://{USER}@127.0.0.1:{}/INBOX", dovecot.imaps_port);
    let out = fetch(&tls_url, &spool, &pw, None).fails_with(69);
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
    fetch(&tls_url, &spool, &pw, Some(&dovecot.ca_file)).fails_with(1);
    assert_eq!(inbox(&spool).len(), 5);
    assert_eq!(flags(port)[7], (8, "\\Seen".to_owned()));
}

/// `text` compressed by the real `xz`.
fn xz_compressed(text: &str) -> Vec<u8> {
    compressed("xz", &["-c", "-q"], text)
}

/// A multipart message: a text/plain `body`, then each attachment as
/// (content type, file name, bytes), base64-encoded.
fn with_attachments(subject: &str, body: &str, attachments: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut mail = format!(
        "From: web5@example.org\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{}\r\n",
        body.replace('\n', "\r\n")
    );
    for (ctype, name, bytes) in attachments {
        mail.push_str(&format!(
            "--b1\r\nContent-Type: {ctype}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64(bytes).replace('\n', "\r\n")
        ));
    }
    mail.push_str("--b1--\r\n");
    mail.into_bytes()
}

#[test]
fn a_cover_note_is_left_out_with_a_warning_and_a_log_of_any_type_is_saved() {
    if require("python3", "python3").is_none() || require("xz", "xz-utils").is_none() {
        return;
    }
    let dir = scratch();
    let Some(dovecot) = Dovecot::start(&dir.path().join("dovecot"), true) else {
        return;
    };
    let port = dovecot.imap_port;
    let msgs = dir.path().join("msgs");
    fs::create_dir_all(&msgs).expect("mkdir");
    let gz = gzipped(LOG1);
    let xz = xz_compressed(LOG1);
    // UID 1: a cover note, a gzip and an xz attachment.
    let note = "Hello,\n\nthe access log of web5 is attached.\n\n-- \nlogrotate on web5\n";
    append(
        &msgs,
        port,
        "1",
        &with_attachments(
            "web5 access.log",
            note,
            &[
                ("application/gzip", "access.log.1.gz", &gz),
                ("application/x-xz", "access.log.2.xz", &xz),
            ],
        ),
        "",
    );
    // UID 2: a body that is log lines itself, beside an attachment.
    append(
        &msgs,
        port,
        "2",
        &with_attachments(
            "web5 access.log",
            LOG1,
            &[("application/gzip", "access.log.1.gz", &gz)],
        ),
        "",
    );
    // UID 3: a body of log lines under a heading and with one line cut,
    // beside an attachment: a log, its two bad lines for split to reject.
    let cut = &LOG1[..40];
    let body3 = format!("Log of web3:\n{LOG1}{cut}\n");
    append(
        &msgs,
        port,
        "3",
        &with_attachments(
            "web3 access.log",
            &body3,
            &[("application/gzip", "access.log.1.gz", &gz)],
        ),
        "",
    );
    // UID 4: an uncompressed log sent as application/octet-stream beside a
    // cover note and an attachment that is no log.
    append(
        &msgs,
        port,
        "4",
        &with_attachments(
            "web4 access.log",
            note,
            &[
                ("application/octet-stream", "access.log", LOG1.as_bytes()),
                ("application/pdf", "report.pdf", b"%PDF-1.4\n%%EOF\n"),
            ],
        ),
        "",
    );
    let spool = dir.path().join("spool");
    fs::create_dir_all(spool.join("inbox")).expect("mkdir");
    let pw = password_file(dir.path());
    let validity = imap_tool(port, &["uidvalidity"]).trim().to_owned();
    let url = format!("imap://{USER}@127.0.0.1:{port}/INBOX");
    let out = fetch(&url, &spool, &pw, Some(&dovecot.ca_file)).succeeds();
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("UID")).collect();
    assert_eq!(
        warnings,
        [
            "pysk-logs: INBOX: message UID 1: part 1: a text body beside the log attachments \
             without a log line in it; left out as a cover note",
            "pysk-logs: INBOX: message UID 4: part 3 (application/pdf \"report.pdf\"): an \
             attachment without a log line in it; left out",
            "pysk-logs: INBOX: message UID 4: part 1: a text body beside the log attachments \
             without a log line in it; left out as a cover note",
        ],
        "{err}"
    );
    assert_eq!(
        inbox(&spool),
        [
            (format!("imap-{validity}-1-2.log"), gz.clone()),
            (format!("imap-{validity}-1-3.log"), xz),
            (format!("imap-{validity}-2-1.log"), LOG1.as_bytes().to_vec()),
            (format!("imap-{validity}-2-2.log"), gz.clone()),
            (format!("imap-{validity}-3-1.log"), body3.into_bytes()),
            (format!("imap-{validity}-3-2.log"), gz),
            (format!("imap-{validity}-4-2.log"), LOG1.as_bytes().to_vec()),
        ]
    );
    let seen = |uid| (uid, "\\Seen".to_owned());
    assert_eq!(flags(port), [seen(1), seen(2), seen(3), seen(4)]);
    // What fetch saved, split reads whole: only the body's heading and its
    // cut line are rejected.
    let out = tool("pysk-logs")
        .args(["split", "--json", "--spool"])
        .arg(&spool)
        .succeeds();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(summary["lines"], 16);
    assert_eq!(summary["accepted"], 14);
    assert_eq!(
        summary["rejected"],
        serde_json::json!({"bad-format": 1, "truncated": 1})
    );
}

#[test]
fn plain_imap_only_on_loopback_and_never_with_an_exposed_password_file() {
    if require("python3", "python3").is_none() {
        return;
    }
    let dir = scratch();
    let Some(dovecot) = Dovecot::start(&dir.path().join("dovecot"), false) else {
        return;
    };
    let port = dovecot.imap_port;
    let msgs = dir.path().join("msgs");
    fs::create_dir_all(&msgs).expect("mkdir");
    append(
        &msgs,
        port,
        "1",
        b"Subject: access.log\r\n\r\nplain line\r\n",
        "",
    );
    let spool = dir.path().join("spool");
    fs::create_dir_all(spool.join("inbox")).expect("mkdir");
    let pw = password_file(dir.path());
    let url = format!("imap://{USER}@127.0.0.1:{port}/INBOX");
    fetch(&url, &spool, &pw, None).succeeds();
    assert_eq!(inbox(&spool).len(), 1);
    assert_eq!(flags(port), [(1, "\\Seen".to_owned())]);

    // --done-mailbox moves fetched mail instead of flagging it.
    imap_tool(port, &["create", "Done"]);
    append(
        &msgs,
        port,
        "2",
        b"Subject: access.log\r\n\r\nmoved line\r\n",
        "",
    );
    fetch(&url, &spool, &pw, None)
        .args(["--done-mailbox", "Done"])
        .succeeds();
    assert_eq!(inbox(&spool).len(), 2);
    assert_eq!(imap_tool(port, &["count", "Done"]).trim(), "1");
    assert_eq!(flags(port).len(), 1, "the moved message left INBOX");

    fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = fetch(&url, &spool, &pw, None).fails_with(77);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
}
