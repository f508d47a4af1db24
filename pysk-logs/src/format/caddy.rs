//! Caddy's JSON access log, one object a line, converted to combined
//! format:
//!
//! | combined | from Caddy's log |
//! |---|---|
//! | `%v` | `request.host` (its port dropped by [`super::vhost_name`]) |
//! | `%h` | `request.client_ip` (the client after Caddy's `trusted_proxies`, what Caddy's own combined template writes), else `request.remote_ip` |
//! | `%l` | `-` |
//! | `%u` | `user_id` when not empty, else `-` |
//! | `%t` | `ts`: seconds since the epoch (a float), or an ISO 8601 string |
//! | `"%r"` | `"request.method request.uri request.proto"` |
//! | `%>s %b` | `status`, `size` |
//! | `"%{Referer}i" "%{User-Agent}i"` | `request.headers.Referer`, `User-Agent`: their values joined by `, ` as Apache joins a repeated header; `"-"` when absent |
//!
//! Quoted fields are escaped as Apache's `ap_escape_logitem` escapes them:
//! `\"`, `\\`, `\b \n \r \t \v`, and `\xhh` for every other control or
//! non-ASCII byte. `%u`, a bare field, also has blanks, `"` and `[` written
//! as `\xhh`, so the written line cuts into the same fields again.

use serde::Deserialize;

use super::{Entry, Format, Reject, is_word};
use pysk_common::date::days_from_civil;

/// The parts of a Caddy log line that combined format holds.
#[derive(Deserialize)]
struct Line {
    ts: Ts,
    request: Request,
    status: u16,
    size: u64,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    remote_ip: Option<String>,
    #[serde(default)]
    client_ip: Option<String>,
    #[serde(default)]
    host: Option<String>,
    method: String,
    uri: String,
    proto: String,
    #[serde(default)]
    headers: Headers,
}

#[derive(Deserialize, Default)]
struct Headers {
    #[serde(rename = "Referer", default)]
    referer: Option<Vec<String>>,
    #[serde(rename = "User-Agent", default)]
    user_agent: Option<Vec<String>>,
}

/// `ts`: a number of seconds, or a string with `time_format iso8601`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Ts {
    Seconds(f64),
    Text(String),
}

/// Only the time, for `merge`.
#[derive(Deserialize)]
struct Stamp {
    ts: Ts,
}

/// The first instant after year 9999, beyond what `%t` can write.
const END: i64 = 253_402_300_800;

impl Ts {
    /// Seconds since the epoch, whole seconds as `%t` has them.
    fn instant(&self) -> Option<i64> {
        let t = match self {
            Ts::Seconds(s) if s.is_finite() && (0.0..END as f64).contains(s) => s.floor() as i64,
            Ts::Seconds(_) => return None,
            Ts::Text(text) => iso8601(text.as_bytes())?,
        };
        (0..END).contains(&t).then_some(t)
    }
}

/// `yyyy-mm-ddThh:mm:ss[.fraction](Z|±hh:mm|±hhmm)`.
fn iso8601(b: &[u8]) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |v, c| v * 10 + i64::from(c - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[16] != b':'
        || !(1..=12).contains(&month)
        || !(1..=crate::time::days_in_month(year, month)).contains(&day)
    {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match &b[i..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), ..] => {
            let zone = &b[i + 1..];
            let m_at = if zone.get(2) == Some(&b':') { 3 } else { 2 };
            if zone.len() != m_at + 2 {
                return None;
            }
            let (h, m) = (num(i + 1..i + 3)?, num(i + 1 + m_at..i + 3 + m_at)?);
            if h > 14 || m > 59 {
                return None;
            }
            (h * 3600 + m * 60) * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset)
}

/// The instant of a Caddy line, `None` when it has no readable `ts`.
pub(super) fn time(line: &[u8]) -> Option<i64> {
    serde_json::from_slice::<Stamp>(line).ok()?.ts.instant()
}

/// Reads a Caddy line and writes its combined-format pieces into
/// `scratch`, which the entry borrows.
pub(super) fn parse<'a>(line: &[u8], scratch: &'a mut Vec<u8>) -> Result<Entry<'a>, Reject> {
    let log: Line = serde_json::from_slice(line).map_err(|e| {
        if e.is_eof() {
            Reject::Truncated
        } else {
            Reject::BadFormat
        }
    })?;
    let r = &log.request;
    let client = r
        .client_ip
        .as_deref()
        .filter(|c| !c.is_empty())
        .or(r.remote_ip.as_deref())
        .ok_or(Reject::BadClient)?;
    if !is_word(client.as_bytes()) {
        return Err(Reject::BadClient);
    }
    if !(100..=999).contains(&log.status) {
        return Err(Reject::BadFormat);
    }
    let time = log.ts.instant().ok_or(Reject::BadDate)?;
    scratch.clear();
    scratch.extend_from_slice(r.host.as_deref().unwrap_or_default().as_bytes());
    let vhost_end = scratch.len();
    scratch.extend_from_slice(client.as_bytes());
    let host_end = scratch.len();
    scratch.extend_from_slice(b" - ");
    match log.user_id.as_deref() {
        None | Some("") => scratch.push(b'-'),
        Some(user) => escape(user.as_bytes(), true, scratch),
    }
    let client_end = scratch.len();
    scratch.push(b'"');
    escape(r.method.as_bytes(), false, scratch);
    scratch.push(b' ');
    escape(r.uri.as_bytes(), false, scratch);
    scratch.push(b' ');
    escape(r.proto.as_bytes(), false, scratch);
    scratch.extend_from_slice(format!("\" {} {}", log.status, log.size).as_bytes());
    let request_end = scratch.len();
    for header in [&r.headers.referer, &r.headers.user_agent] {
        scratch.push(b' ');
        quoted(header.as_deref(), scratch);
    }
    let s: &'a [u8] = scratch;
    Ok(Entry {
        format: Format::Caddy,
        vhost: (vhost_end > 0).then(|| &s[..vhost_end]),
        client: &s[vhost_end..client_end],
        host: &s[vhost_end..host_end],
        time,
        request: &s[client_end..request_end],
        agent: Some(&s[request_end + 1..]),
        rest: &s[client_end..],
    })
}

/// A header's values as a quoted field: joined by `, `, `"-"` when absent.
fn quoted(values: Option<&[String]>, out: &mut Vec<u8>) {
    match values {
        None | Some([]) => out.extend_from_slice(b"\"-\""),
        Some(values) => {
            out.push(b'"');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                escape(v.as_bytes(), false, out);
            }
            out.push(b'"');
        }
    }
}

/// Appends `text` escaped as Apache's `ap_escape_logitem` does; `bare`
/// also escapes what a bare field cannot hold (blank, `"`, `[`) as `\xhh`.
fn escape(text: &[u8], bare: bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &c in text {
        match c {
            b' ' | b'"' | b'[' if bare => {
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
            }
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]),
        }
    }
}
