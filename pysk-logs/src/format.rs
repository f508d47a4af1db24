//! The access log formats pysk reads, and the combined format it writes.
//!
//! | name | Apache `LogFormat` |
//! |---|---|
//! | `igowo` | `%A %D %v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %I %O` |
//! | `vhextendedio` | `%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %I %O` |
//! | `vhextended` | `%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"` |
//! | `combined` | `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"` |
//! | `common` | `%h %l %u %t "%r" %>s %b` |
//!
//! A line is cut into fields once, and the formats are tried in that order
//! against the number of fields before and after `%t`; every format has its
//! own pair, so the first that fits is the only one. Quoted fields follow
//! Apache's escaping (`\"`, `\\`, `\xhh`) and are kept byte for byte, also
//! when they are not UTF-8. A line that fits no format is rejected with a
//! [`Reject`] reason, never guessed at.
//!
//! That table is the fast path. Only a line it refuses is read again, by
//! the rules the servers' own formats need:
//!
//! - fields after the user agent (nginx's `main` adds
//!   `"$http_x_forwarded_for"`, other formats times or upstreams, quoted or
//!   bare) are accepted and dropped from the combined output, as AWStats
//!   ignores them; one trailing blank (nginx `log_format` lines that end in
//!   a space) is ignored like a trailing `\r`;
//! - a client the fast path does not know: AWStats takes any word as the
//!   client, and so does this reading — nginx's `unix:` (a Unix socket),
//!   an IPv6 address with a zone index (`fe80::1%eth0`), a host name with
//!   `_` (`HostnameLookups On`), anonymised `3.253.???.??`, `host:port`,
//!   `-`;
//! - a line that is a JSON object is Caddy's access log ([`caddy`]);
//! - an empty (or all-blank) line is `empty`.
//!
//! Apache's `vhost_combined` (`%v:%p` + combined, Debian's
//! `other_vhosts_access.log`) is `vhextended` to the table: [`vhost_name`]
//! drops the port when the virtual host is looked up, and a `%v` that is
//! empty (the default server without a name, `:80`) names no virtual host.
//!
//! The time is the first field that starts with `[`: a bare field may hold
//! a `[` (a user `us[er]`), but never starts with one. [`combined_time`],
//! which `merge` uses, reads the time by the same rule.

use std::net::IpAddr;

use crate::time;

mod caddy;

/// Which format a line was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `%A %D %v` + combined + `%I %O`.
    Igowo,
    /// `%v` + combined + `%I %O`.
    VhExtendedIo,
    /// `%v` + combined; also Apache's `vhost_combined` (`%v:%p` + combined).
    VhExtended,
    /// Apache's combined format; also nginx's `main` (fields after the user
    /// agent are dropped, in every format).
    Combined,
    /// Apache's common format.
    Common,
    /// Caddy's JSON access log.
    Caddy,
}

/// Why a line was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// The line holds a NUL byte (a torn write or binary garbage).
    NulByte,
    /// The line ends inside a field or lacks its last fields: a cut write.
    Truncated,
    /// The fields fit none of the formats, or one is malformed.
    BadFormat,
    /// The timestamp is not a valid date and time.
    BadDate,
    /// The line names no virtual host and no `--vhost` was given.
    NoVhost,
    /// The virtual host is not a valid host name.
    BadVhost,
    /// The virtual host is not in the `--vhosts` list.
    UnknownVhost,
    /// The line is longer than any web server writes (64 KiB).
    TooLong,
    /// The line is empty or all blanks.
    Empty,
    /// The client is missing or not one word a combined line can carry
    /// (a Caddy line's `client_ip`/`remote_ip`, a client starting with `{`).
    BadClient,
}

impl Reject {
    /// Every reason, in report order.
    pub const ALL: [Reject; 10] = [
        Reject::NulByte,
        Reject::Truncated,
        Reject::BadFormat,
        Reject::BadDate,
        Reject::NoVhost,
        Reject::BadVhost,
        Reject::UnknownVhost,
        Reject::TooLong,
        Reject::Empty,
        Reject::BadClient,
    ];

    /// The reason as written in `rejected/` files and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::NulByte => "nul-byte",
            Reject::Truncated => "truncated",
            Reject::BadFormat => "bad-format",
            Reject::BadDate => "bad-date",
            Reject::NoVhost => "no-vhost",
            Reject::BadVhost => "bad-vhost",
            Reject::UnknownVhost => "unknown-vhost",
            Reject::TooLong => "too-long",
            Reject::Empty => "empty",
            Reject::BadClient => "bad-client",
        }
    }
}

/// The fields of one parsed line, borrowed from it (or, for a converted
/// Caddy line, from the caller's scratch buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The format it was read in.
    pub format: Format,
    /// `%v` as written, when the format has it: `vhost_combined`'s
    /// `%v:%p` keeps its port here; [`vhost_name`] drops it.
    pub vhost: Option<&'a [u8]>,
    /// `%h %l %u`, as written (three space-separated fields).
    pub client: &'a [u8],
    /// The client address or name (`%h`).
    pub host: &'a [u8],
    /// The instant, seconds since the epoch.
    pub time: i64,
    /// `"%r" %>s %b`, quotes included, as written.
    pub request: &'a [u8],
    /// `"%{Referer}i" "%{User-Agent}i"`, quotes included, when present.
    pub agent: Option<&'a [u8]>,
    /// The request through the agent, as written: `request`, and when
    /// there is an agent, one space and `agent`.
    pub rest: &'a [u8],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bare,
    Quoted,
    Bracket,
}

#[derive(Clone, Copy)]
struct Field {
    kind: Kind,
    start: usize,
    end: usize,
}

const MAX_FIELDS: usize = 14;

/// The most fields the second reading takes (extra fields after the user
/// agent).
const MAX_FIELDS_OTHER: usize = 64;

/// Cuts `line` into fields separated by single spaces: bare words,
/// `"quoted"` (with backslash escapes) and `[bracketed]`. A line that
/// passes holds no NUL byte outside its bracketed field: bare words refuse
/// control characters and quoted fields NUL bytes.
fn fields<const N: usize>(line: &[u8], out: &mut [Field; N]) -> Result<usize, Reject> {
    let mut n = 0;
    let mut i = 0;
    while i < line.len() {
        if n == N {
            return Err(Reject::BadFormat);
        }
        let (kind, start, end, next) = match line[i] {
            b'"' => {
                let mut j = i + 1;
                loop {
                    match memchr::memchr3(b'"', b'\\', 0, &line[j..]) {
                        None => return Err(Reject::Truncated),
                        Some(k) if line[j + k] == 0 => return Err(Reject::NulByte),
                        Some(k) if line[j + k] == b'\\' => {
                            j += k + 2;
                            match line.get(j - 1) {
                                None => return Err(Reject::Truncated),
                                Some(0) => return Err(Reject::NulByte),
                                Some(_) => {}
                            }
                        }
                        Some(k) => break (Kind::Quoted, i, j + k + 1, j + k + 1),
                    }
                }
            }
            b'[' => match memchr::memchr(b']', &line[i..]) {
                None => return Err(Reject::Truncated),
                Some(k) => (Kind::Bracket, i, i + k + 1, i + k + 1),
            },
            b' ' => return Err(Reject::BadFormat),
            _ => {
                // Bare words are short: one pass checks and ends them.
                let mut end = i;
                while let Some(&c) = line.get(end) {
                    match c {
                        b' ' => break,
                        b'"' | 0x7f | 0..=0x1f => return Err(Reject::BadFormat),
                        _ => end += 1,
                    }
                }
                (Kind::Bare, i, end, end)
            }
        };
        out[n] = Field { kind, start, end };
        n += 1;
        match line.get(next) {
            None => i = next,
            Some(b' ') if next + 1 < line.len() => i = next + 1,
            Some(_) => return Err(Reject::BadFormat),
        }
    }
    Ok(n)
}

fn all_digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// Whether `b` is an IPv4 address in the dotted-quad form the standard
/// library's parser takes (four parts of at most 255, no leading zeros):
/// the common case, checked without the general parser.
fn is_ipv4(b: &[u8]) -> bool {
    let (mut dots, mut value, mut digits) = (0, 0u32, 0);
    for &c in b {
        match c {
            b'0'..=b'9' if digits == 0 || value > 0 => {
                value = value * 10 + u32::from(c - b'0');
                digits += 1;
                if value > 255 {
                    return false;
                }
            }
            b'.' if digits > 0 && dots < 3 => {
                dots += 1;
                value = 0;
                digits = 0;
            }
            _ => return false,
        }
    }
    dots == 3 && digits > 0
}

fn is_ip(b: &[u8]) -> bool {
    is_ipv4(b) || std::str::from_utf8(b).is_ok_and(|s| s.parse::<IpAddr>().is_ok())
}

/// Whether `b` is a valid client field: an address, or a host name when
/// the server logs names. The fast path's test; [`is_word`] is the rule.
fn is_client(b: &[u8]) -> bool {
    is_ip(b) || std::str::from_utf8(b).is_ok_and(pysk_common::hostname::is_host_name)
}

/// Whether `b` can stand as a client in a combined line: one bare word
/// (no blank, control byte or `"`) that does not start with `[` (the
/// time) or `{` (a Caddy line): the line it starts reads back the same. AWStats
/// takes any such word as the client (`\S+`), so split does too: nginx's
/// `unix:`, `fe80::1%eth0`, names with `_`, anonymised `3.253.???.??`,
/// `203.0.113.9:5555`, and `-` when a proxy header was empty.
pub(crate) fn is_word(b: &[u8]) -> bool {
    !b.is_empty()
        && !matches!(b[0], b'[' | b'{')
        && b.iter().all(|&c| c > b' ' && c != 0x7f && c != b'"')
}

/// Parses one line (without its newline; a trailing `\r` is ignored),
/// reading its timestamp through `clock`. A Caddy line is converted into
/// `scratch`, which its entry then borrows; other lines leave it alone.
pub fn parse<'a>(
    line: &'a [u8],
    clock: &mut time::DayCache,
    scratch: &'a mut Vec<u8>,
) -> Result<Entry<'a>, Reject> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Ok(entry) = parse_fields(line, clock) {
        return Ok(entry);
    }
    // A NUL byte is the reason whatever else is wrong with the line; only a
    // line that fails needs the search, as one that passes holds none.
    parse_other(line, clock, scratch).map_err(|reason| {
        if memchr::memchr(0, line).is_some() {
            Reject::NulByte
        } else {
            reason
        }
    })
}

/// The fast path: the formats of the table, exactly.
fn parse_fields<'a>(line: &'a [u8], clock: &mut time::DayCache) -> Result<Entry<'a>, Reject> {
    let mut f = [Field {
        kind: Kind::Bare,
        start: 0,
        end: 0,
    }; MAX_FIELDS];
    let n = fields(line, &mut f)?;
    let f = &f[..n];
    let Some(t) = f.iter().position(|x| x.kind == Kind::Bracket) else {
        return Err(Reject::BadFormat);
    };
    let (before, after) = (&f[..t], &f[t + 1..]);
    let format = match (before.len(), after.len()) {
        (6, 7) => Format::Igowo,
        (4, 7) => Format::VhExtendedIo,
        (4, 5) => Format::VhExtended,
        (3, 5) => Format::Combined,
        (3, 3) => Format::Common,
        (3 | 4 | 6, 0..=2) => return Err(Reject::Truncated),
        (6, 3..=6) | (4, 6) | (3, 4) => return Err(Reject::Truncated),
        _ => return Err(Reject::BadFormat),
    };
    let text = |x: &Field| &line[x.start..x.end];
    if before.iter().any(|x| x.kind != Kind::Bare) {
        return Err(Reject::BadFormat);
    }
    let shape_ok = after[0].kind == Kind::Quoted
        && after[1].kind == Kind::Bare
        && after[2].kind == Kind::Bare
        && after.get(3).is_none_or(|x| x.kind == Kind::Quoted)
        && after.get(4).is_none_or(|x| x.kind == Kind::Quoted)
        && after[5.min(after.len())..]
            .iter()
            .all(|x| all_digits(text(x)));
    let status = text(&after[1]);
    let bytes = text(&after[2]);
    if !shape_ok
        || status.len() != 3
        || !all_digits(status)
        || !(bytes == b"-" || all_digits(bytes))
    {
        return Err(Reject::BadFormat);
    }
    let client_at = before.len() - 3;
    if format == Format::Igowo && (!is_ip(text(&before[0])) || !all_digits(text(&before[1]))) {
        return Err(Reject::BadFormat);
    }
    let host = text(&before[client_at]);
    if !is_client(host) {
        return Err(Reject::BadFormat);
    }
    let stamp = text(&f[t]);
    let time = clock
        .parse(&stamp[1..stamp.len() - 1])
        .ok_or(Reject::BadDate)?;
    Ok(entry(line, f, t, format, time, after.len() >= 5))
}

/// The second reading of a line the fast path refused (see the module's
/// documentation): an empty line, a Caddy line, or the table's formats
/// with a trailing blank, fields after the user agent and the other
/// clients. Kept out of line: the fast path's code stays as it was.
#[cold]
#[inline(never)]
fn parse_other<'a>(
    line: &'a [u8],
    clock: &mut time::DayCache,
    scratch: &'a mut Vec<u8>,
) -> Result<Entry<'a>, Reject> {
    if line.iter().all(|&b| b == b' ' || b == b'\t') {
        return Err(Reject::Empty);
    }
    if line.first() == Some(&b'{') {
        return caddy::parse(line, scratch);
    }
    let line = line.strip_suffix(b" ").unwrap_or(line);
    let mut f = [Field {
        kind: Kind::Bare,
        start: 0,
        end: 0,
    }; MAX_FIELDS_OTHER];
    let n = fields(line, &mut f)?;
    read_other(line, &f[..n], clock)
}

/// What follows `%t`, field by field, in the longest format (`igowo`).
const SHAPE: [Kind; 7] = [
    Kind::Quoted,
    Kind::Bare,
    Kind::Bare,
    Kind::Quoted,
    Kind::Quoted,
    Kind::Bare,
    Kind::Bare,
];

/// Reads the fields `f` of `line` by the table's formats, any fields after
/// the format's last one ignored. Fewer fields than the format needs, each
/// of the right kind, are a cut line (`truncated`); anything else that
/// does not fit is `bad-format`.
fn read_other<'a>(
    line: &'a [u8],
    f: &[Field],
    clock: &mut time::DayCache,
) -> Result<Entry<'a>, Reject> {
    let t = f
        .iter()
        .position(|x| x.kind == Kind::Bracket)
        .ok_or(Reject::BadFormat)?;
    let (before, after) = (&f[..t], &f[t + 1..]);
    let text = |x: &Field| &line[x.start..x.end];
    let (format, need) = match (before.len(), after.len()) {
        (6, _) => (Format::Igowo, 7),
        (4, _) => (Format::VhExtended, 5),
        (3, 3) => (Format::Common, 3),
        (3, _) => (Format::Combined, 5),
        _ => return Err(Reject::BadFormat),
    };
    let shape_ok = before.iter().all(|x| x.kind == Kind::Bare)
        && after.iter().zip(&SHAPE[..need]).all(|(x, k)| x.kind == *k);
    if after.len() < need {
        return Err(if shape_ok {
            Reject::Truncated
        } else {
            Reject::BadFormat
        });
    }
    let (status, bytes) = (text(&after[1]), text(&after[2]));
    if !shape_ok
        || status.len() != 3
        || !all_digits(status)
        || !(bytes == b"-" || all_digits(bytes))
        || (format == Format::Igowo
            && !(is_ip(text(&before[0]))
                && all_digits(text(&before[1]))
                && all_digits(text(&after[5]))
                && all_digits(text(&after[6]))))
    {
        return Err(Reject::BadFormat);
    }
    let client_at = before.len() - 3;
    let host = text(&before[client_at]);
    if !is_word(host) {
        return Err(Reject::BadClient);
    }
    let stamp = text(&f[t]);
    let time = clock
        .parse(&stamp[1..stamp.len() - 1])
        .ok_or(Reject::BadDate)?;
    Ok(entry(line, f, t, format, time, need >= 5))
}

/// The entry of `line`, whose fields `f` fit `format` with the time at
/// `f[t]` (already read: `time`); `agent` when the format has the referer
/// and the user agent. Both readings end here.
#[inline(always)]
fn entry<'a>(
    line: &'a [u8],
    f: &[Field],
    t: usize,
    format: Format,
    time: i64,
    agent: bool,
) -> Entry<'a> {
    let (before, after) = (&f[..t], &f[t + 1..]);
    let text = |x: &Field| &line[x.start..x.end];
    let client_at = before.len() - 3;
    let rest_end = if agent { after[4].end } else { after[2].end };
    Entry {
        format,
        vhost: (client_at > 0).then(|| text(&before[client_at - 1])),
        client: &line[before[client_at].start..before[client_at + 2].end],
        host: text(&before[client_at]),
        time,
        request: &line[after[0].start..after[2].end],
        agent: agent.then(|| &line[after[3].start..after[4].end]),
        rest: &line[after[0].start..rest_end],
    }
}

/// The name in a virtual host field as written: `vhost_combined`'s
/// `%v:%p` without its port, and without the final dot of a fully
/// qualified name (`example.org.`, as a client may send it in `Host:`).
/// `None` when nothing is left: Apache's default server without a name
/// writes `:80`, a line that names no virtual host.
pub fn vhost_name(raw: &[u8]) -> Option<&[u8]> {
    let name = match memchr::memrchr(b':', raw) {
        Some(i) if all_digits(&raw[i + 1..]) && !raw[..i].contains(&b':') => &raw[..i],
        _ => raw,
    };
    let name = match name.strip_suffix(b".") {
        Some(short) if !short.is_empty() => short,
        _ => name,
    };
    (!name.is_empty()).then_some(name)
}

/// Checks and lower-cases a virtual host name; `None` if it is not a valid
/// host name (it becomes a directory name, so this is a security check).
pub fn normalize_vhost(vhost: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(vhost).ok()?.to_ascii_lowercase();
    pysk_common::hostname::is_host_name(&s).then_some(s)
}

/// The pieces of `entry` as one combined-format line with its time in
/// UTC, newline included: written one after the other, they are the line.
/// `stamp` is the formatted time, which callers cache across lines of the
/// same second.
pub fn combined<'e>(entry: &Entry<'e>, stamp: &'e [u8; time::LEN]) -> [&'e [u8]; 6] {
    let tail: &[u8] = if entry.agent.is_some() {
        b"\n"
    } else {
        b" \"-\" \"-\"\n"
    };
    [entry.client, b" [", stamp, b"] ", entry.rest, tail]
}

/// The instant of a combined-format line: the timestamp in the first
/// field that starts with `[` (the rule [`parse`] finds `%t` by), read
/// through `clock`; for a Caddy JSON line, its `ts`. Used by `merge`,
/// which reads what `split` wrote, and raw logs.
pub fn combined_time(line: &[u8], clock: &mut time::DayCache) -> Option<i64> {
    if line.first() == Some(&b'{') {
        return caddy::time(line);
    }
    // The stamp is a few dozen bytes in: a plain loop beats a vectorised
    // search's setup here.
    let mut from = 0;
    let open = loop {
        let at = from + line[from..].iter().position(|&b| b == b'[')?;
        if at == 0 || line[at - 1] == b' ' {
            break at;
        }
        from = at + 1;
    };
    let stamp = line.get(open + 1..open + 1 + time::LEN)?;
    if line.get(open + 1 + time::LEN) != Some(&b']') {
        return None;
    }
    clock.parse(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &[u8]) -> Result<Entry<'_>, Reject> {
        // A Caddy line's entry borrows its scratch buffer: one per test line.
        parse(
            line,
            &mut time::DayCache::default(),
            Box::leak(Box::default()),
        )
    }

    const REQ: &str = r#""GET /index.html HTTP/1.1" 200 1043"#;
    const AGENT: &str = r#""http://example.org/" "Mozilla/5.0 (X11)""#;
    const STAMP: &str = "[17/May/2015:12:05:03 +0200]";

    fn combined_of(line: &str, vhost: Option<&str>) -> String {
        let e = p(line.as_bytes()).expect("parses");
        assert_eq!(
            e.vhost.map(|v| std::str::from_utf8(v).expect("utf-8")),
            vhost
        );
        let mut stamp = [0u8; time::LEN];
        time::format_utc(e.time, &mut stamp);
        String::from_utf8(combined(&e, &stamp).concat()).expect("utf-8")
    }

    #[test]
    fn every_format_becomes_the_same_combined_line_in_utc() {
        let expected = format!("192.0.2.7 - bob [17/May/2015:10:05:03 +0000] {REQ} {AGENT}\n");
        let cases = [
            (
                format!(
                    "10.0.0.1 1234 www.example.org 192.0.2.7 - bob {STAMP} {REQ} {AGENT} 512 2048"
                ),
                Format::Igowo,
                Some("www.example.org"),
            ),
            (
                format!("www.example.org 192.0.2.7 - bob {STAMP} {REQ} {AGENT} 512 2048"),
                Format::VhExtendedIo,
                Some("www.example.org"),
            ),
            (
                format!("www.example.org 192.0.2.7 - bob {STAMP} {REQ} {AGENT}"),
                Format::VhExtended,
                Some("www.example.org"),
            ),
            (
                format!("192.0.2.7 - bob {STAMP} {REQ} {AGENT}"),
                Format::Combined,
                None,
            ),
        ];
        for (line, format, vhost) in cases {
            assert_eq!(p(line.as_bytes()).expect("parses").format, format, "{line}");
            assert_eq!(combined_of(&line, vhost), expected, "{line}");
        }
        let common = format!("192.0.2.7 - bob {STAMP} {REQ}");
        assert_eq!(p(common.as_bytes()).expect("parses").format, Format::Common);
        assert_eq!(
            combined_of(&common, None),
            format!("192.0.2.7 - bob [17/May/2015:10:05:03 +0000] {REQ} \"-\" \"-\"\n")
        );
    }

    #[test]
    fn quoted_fields_keep_escapes_and_raw_bytes() {
        let mut line = b"ex.org 2001:db8::1 - - [17/May/2015:10:05:03 +0000] \"GET /a\\\"b\\\\c\\x0a HTTP/1.1\" 404 - \"-\" \"agent \xff\xfe \\\"q\\\"\"".to_vec();
        let e = p(&line).expect("parses");
        assert_eq!(e.host, b"2001:db8::1");
        assert_eq!(e.request, b"\"GET /a\\\"b\\\\c\\x0a HTTP/1.1\" 404 -");
        assert_eq!(e.agent, Some(&b"\"-\" \"agent \xff\xfe \\\"q\\\"\""[..]));
        line.push(b'\r');
        assert!(p(&line).is_ok(), "a CRLF line ending is tolerated");
    }

    #[test]
    fn corrupt_lines_get_their_reason() {
        let good = format!("www.example.org 192.0.2.7 - - {STAMP} {REQ} {AGENT}");
        let cases: Vec<(Vec<u8>, Reject)> = vec![
            (
                good.as_bytes()[..good.len() - 10].to_vec(),
                Reject::Truncated,
            ),
            (good.as_bytes()[..40].to_vec(), Reject::Truncated),
            (good.as_bytes()[..70].to_vec(), Reject::Truncated),
            (b"complete garbage".to_vec(), Reject::BadFormat),
            (b"\x00\x00\x00\x00".to_vec(), Reject::NulByte),
            (
                good.replacen("192.0.2.7", "19\u{0}2.0.2.7", 1).into_bytes(),
                Reject::NulByte,
            ),
            (
                good.replacen("GET", "G\u{0}T", 1).into_bytes(),
                Reject::NulByte,
            ),
            (
                good.replacen("GET", "G\\\u{0}T", 1).into_bytes(),
                Reject::NulByte,
            ),
            (
                good.replacen("2015:", "2015\u{0}", 1).into_bytes(),
                Reject::NulByte,
            ),
            (
                format!("{}\u{0}", &good[..60]).into_bytes(),
                Reject::NulByte,
            ),
            (
                good.replace("17/May/2015", "32/May/2015").into_bytes(),
                Reject::BadDate,
            ),
            (
                good.replace(" 200 ", " 2OO ").into_bytes(),
                Reject::BadFormat,
            ),
            (
                good.replace(" 1043 ", " 10x3 ").into_bytes(),
                Reject::BadFormat,
            ),
            (
                good.replace("192.0.2.7", "bad\"host").into_bytes(),
                Reject::BadFormat,
            ),
            (
                format!("a b c d e f g {STAMP} {REQ}").into_bytes(),
                Reject::BadFormat,
            ),
            (format!("{good}  ").into_bytes(), Reject::BadFormat),
            (
                format!("{good} 1 2 3")
                    .replace(" 200 ", " 20 ")
                    .into_bytes(),
                Reject::BadFormat,
            ),
            (b"".to_vec(), Reject::Empty),
            (b"  \t ".to_vec(), Reject::Empty),
            (
                format!("192.0.2.7 - - {STAMP} {REQ} 512").into_bytes(),
                Reject::BadFormat,
            ),
            (
                format!("192.0.2.7 - - {STAMP} {REQ} \"-\"").into_bytes(),
                Reject::Truncated,
            ),
            (
                good.replacen("192.0.2.7", "{x}", 1).into_bytes(),
                Reject::BadClient,
            ),
            (
                format!("x 10 www.example.org 192.0.2.7 - - {STAMP} {REQ} {AGENT} 1 2")
                    .into_bytes(),
                Reject::BadFormat,
            ),
        ];
        for (line, reason) in cases {
            assert_eq!(p(&line), Err(reason), "{}", String::from_utf8_lossy(&line));
        }
    }

    #[test]
    fn vhost_combined_names_the_vhost_without_its_port() {
        let line = format!("www.example.org:443 192.0.2.7 - bob {STAMP} {REQ} {AGENT}");
        let expected = format!("192.0.2.7 - bob [17/May/2015:10:05:03 +0000] {REQ} {AGENT}\n");
        assert_eq!(combined_of(&line, Some("www.example.org:443")), expected);
        assert_eq!(
            vhost_name(b"www.example.org:443"),
            Some(&b"www.example.org"[..])
        );
        assert_eq!(
            vhost_name(b"www.example.org"),
            Some(&b"www.example.org"[..])
        );
        assert_eq!(vhost_name(b":80"), None, "the default server names none");
        assert_eq!(
            vhost_name(b"www.example.org.:443"),
            Some(&b"www.example.org"[..])
        );
        assert_eq!(
            vhost_name(b"www.example.org."),
            Some(&b"www.example.org"[..])
        );
        assert_eq!(vhost_name(b"."), Some(&b"."[..]), "left to be refused");
        assert_eq!(vhost_name(b"[::1]:443"), Some(&b"[::1]:443"[..]));
        assert_eq!(vhost_name(b"a:b"), Some(&b"a:b"[..]));
        let default = format!(":80 192.0.2.7 - bob {STAMP} {REQ} {AGENT}");
        assert_eq!(combined_of(&default, Some(":80")), expected);
    }

    #[test]
    fn fields_after_the_agent_and_a_trailing_blank_are_dropped() {
        let expected = format!("192.0.2.7 - bob [17/May/2015:10:05:03 +0000] {REQ} {AGENT}\n");
        let base = format!("192.0.2.7 - bob {STAMP} {REQ} {AGENT}");
        for line in [
            format!("{base} \"-\""),
            format!("{base} \"198.51.100.1, 10.0.0.1\" "),
            format!("{base} \"-\" \r"),
            format!("{base} "),
            format!("{base} 0.005 \"upstream\" - 1 2 3 4 5 6 7 8 9 10 11 12"),
        ] {
            assert_eq!(combined_of(&line, None), expected, "{line:?}");
        }
        let vh = format!("www.example.org:80 192.0.2.7 - bob {STAMP} {REQ} {AGENT} \"-\"");
        assert_eq!(combined_of(&vh, Some("www.example.org:80")), expected);
        let io = format!("www.example.org 192.0.2.7 - bob {STAMP} {REQ} {AGENT} 1 2 3");
        assert_eq!(combined_of(&io, Some("www.example.org")), expected);
        assert_eq!(
            p(format!("{base}  ").as_bytes()),
            Err(Reject::BadFormat),
            "one blank only"
        );
    }

    #[test]
    fn clients_awstats_counts_are_accepted() {
        let clients = [
            "unix:",
            "fe80::1%eth0",
            "crawl_1.example.org",
            "_gateway",
            "3.253.???.??",
            "203.0.113.9:5555",
            "host.example.com.",
            "1.2.3.999",
            "a..b",
            "-",
        ];
        for client in clients {
            let line = format!("{client} - - {STAMP} {REQ} {AGENT}");
            let e = p(line.as_bytes()).expect(client);
            assert_eq!(e.host, client.as_bytes());
            assert_eq!(e.client, format!("{client} - -").as_bytes());
        }
    }

    #[test]
    fn a_bracket_inside_the_user_is_not_the_time_for_split_or_merge() {
        let line = format!("192.0.2.7 - us[er] {STAMP} {REQ} {AGENT}");
        let e = p(line.as_bytes()).expect("parses");
        assert_eq!(e.client, b"192.0.2.7 - us[er]");
        let out = combined_of(&line, None);
        assert_eq!(
            combined_time(out.as_bytes(), &mut time::DayCache::default()),
            Some(e.time)
        );
        assert_eq!(
            p(format!("192.0.2.7 - [user] {STAMP} {REQ} {AGENT}").as_bytes()),
            Err(Reject::BadFormat)
        );
    }

    const CADDY: &str = r#"{"level":"info","ts":1431857103.5241024,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"10.0.0.9","remote_port":"41342","client_ip":"192.0.2.7","proto":"HTTP/2.0","method":"GET","host":"WWW.example.org:8443","uri":"/a\"b\\c\u0001\n\u00e9?q=1","headers":{"User-Agent":["Mozilla/5.0 (X11)"],"Referer":["http://example.org/"],"Accept":["*/*"]}},"bytes_read":0,"user_id":"bob smith","duration":0.0009,"size":1043,"status":200,"resp_headers":{}}"#;

    #[test]
    fn caddy_lines_become_combined_lines() {
        let mut scratch = Vec::new();
        let e = parse(
            CADDY.as_bytes(),
            &mut time::DayCache::default(),
            &mut scratch,
        )
        .expect("parses");
        assert_eq!(e.format, Format::Caddy);
        assert_eq!(e.vhost, Some(&b"WWW.example.org:8443"[..]));
        assert_eq!(e.host, b"192.0.2.7");
        let mut stamp = [0u8; time::LEN];
        time::format_utc(e.time, &mut stamp);
        assert_eq!(
            String::from_utf8(combined(&e, &stamp).concat()).expect("ascii"),
            "192.0.2.7 - bob\\x20smith [17/May/2015:10:05:03 +0000] \
             \"GET /a\\\"b\\\\c\\x01\\n\\xc3\\xa9?q=1 HTTP/2.0\" 200 1043 \
             \"http://example.org/\" \"Mozilla/5.0 (X11)\"\n"
        );
        assert_eq!(
            combined_time(CADDY.as_bytes(), &mut time::DayCache::default()),
            Some(1_431_857_103)
        );
    }

    #[test]
    fn caddy_lines_without_optional_fields_and_with_iso_times() {
        let line = r#"{"ts":"2015-05-17T12:05:03.52+02:00","request":{"remote_ip":"2001:db8::1","method":"HEAD","uri":"/","proto":"HTTP/1.1","headers":{"User-Agent":["a","b"]}},"status":304,"size":0,"user_id":""}"#;
        let mut scratch = Vec::new();
        let e = parse(
            line.as_bytes(),
            &mut time::DayCache::default(),
            &mut scratch,
        )
        .expect("parses");
        assert_eq!(e.vhost, None);
        assert_eq!(e.time, 1_431_857_103);
        assert_eq!(e.client, b"2001:db8::1 - -");
        assert_eq!(e.rest, br#""HEAD / HTTP/1.1" 304 0 "-" "a, b""#);
        for (iso, t) in [
            ("2015-05-17T10:05:03Z", Some(1_431_857_103)),
            ("2015-05-17T10:05:03.999-0130", Some(1_431_857_103 + 5400)),
            ("2015-05-17 10:05:03Z", None),
            ("2015-13-17T10:05:03Z", None),
            ("2023-02-31T22:13:20Z", None),
            ("2023-02-29T22:13:20Z", None),
            ("2023-04-31T22:13:20Z", None),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800)),
            ("2000-02-29T00:00:00Z", Some(951_782_400)),
            ("2100-02-29T00:00:00Z", None),
            ("2015-05-17T10:05:03", None),
        ] {
            assert_eq!(
                caddy::time(format!(r#"{{"ts":"{iso}"}}"#).as_bytes()),
                t,
                "{iso}"
            );
        }
    }

    #[test]
    fn bad_caddy_lines_get_their_reason() {
        let cases = [
            (&CADDY[..CADDY.len() - 30], Reject::Truncated),
            ("{}", Reject::BadFormat),
            ("{not json", Reject::BadFormat),
        ];
        for (line, reason) in cases {
            assert_eq!(p(line.as_bytes()), Err(reason), "{line}");
        }
        let status = CADDY.replace(r#""status":200"#, r#""status":0"#);
        assert_eq!(p(status.as_bytes()), Err(Reject::BadFormat));
        let date = CADDY.replace("1431857103.5241024", "-5");
        assert_eq!(p(date.as_bytes()), Err(Reject::BadDate));
        let client = CADDY.replace("192.0.2.7", "a b");
        assert_eq!(p(client.as_bytes()), Err(Reject::BadClient));
        assert_eq!(
            p(CADDY.replace("info", "in\u{0}fo").as_bytes()),
            Err(Reject::NulByte)
        );
    }

    #[test]
    fn mutated_lines_never_panic_and_accepted_ones_write_cleanly() {
        // A small deterministic generator: every cut, every replaced byte
        // of real lines, many times over. What is accepted writes one clean
        // line that reads back with the same time, by split and by merge.
        let goods = [
            format!("10.0.0.1 1234 www.example.org 192.0.2.7 - bob {STAMP} {REQ} {AGENT} 512 2048"),
            format!("unix: - b[o]b {STAMP} {REQ} {AGENT} \"198.51.100.1\" "),
            CADDY.to_owned(),
        ];
        let alphabet = b" \"[]{}\\:/+-0123456789abcxyz\x00\xff\r\t";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut clock = time::DayCache::default();
        let mut stamp = [0u8; time::LEN];
        for good in &goods {
            for cut in 0..=good.len() {
                let _ = parse(&good.as_bytes()[..cut], &mut clock, &mut Vec::new());
            }
            for _ in 0..40_000 {
                let mut line = good.as_bytes().to_vec();
                for _ in 0..(next() % 4 + 1) {
                    let at = (next() as usize) % line.len();
                    line[at] = alphabet[(next() as usize) % alphabet.len()];
                }
                let mut scratch = Vec::new();
                if let Ok(entry) = parse(&line, &mut clock, &mut scratch) {
                    time::format_utc(entry.time, &mut stamp);
                    let out = combined(&entry, &stamp).concat();
                    let shown = String::from_utf8_lossy(&line).escape_debug().to_string();
                    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "{shown}");
                    assert!(!out.contains(&0), "{shown}");
                    let out = &out[..out.len() - 1];
                    assert_eq!(p(out).map(|e| e.time), Ok(entry.time), "{shown}");
                    assert_eq!(combined_time(out, &mut clock), Some(entry.time), "{shown}");
                }
            }
        }
    }

    #[test]
    fn the_ipv4_shortcut_agrees_with_the_standard_parser() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789..:x";
        let mut cases: Vec<Vec<u8>> = [
            &b"0.0.0.0"[..],
            b"255.255.255.255",
            b"256.1.1.1",
            b"01.2.3.4",
            b"1.2.3",
            b"1.2.3.4.",
            b".1.2.3",
            b"1..2.3",
            b"1.2.3.04",
            b"10.0.0.10",
            b"",
        ]
        .iter()
        .map(|c| c.to_vec())
        .collect();
        for _ in 0..200_000 {
            let len = (next() % 16) as usize;
            cases.push(
                (0..len)
                    .map(|_| alphabet[(next() as usize) % alphabet.len()])
                    .collect(),
            );
        }
        for case in cases {
            let std =
                std::str::from_utf8(&case).is_ok_and(|s| s.parse::<std::net::Ipv4Addr>().is_ok());
            assert_eq!(is_ipv4(&case), std, "{}", String::from_utf8_lossy(&case));
        }
    }

    #[test]
    fn vhost_names_are_checked_and_lowercased() {
        assert_eq!(
            normalize_vhost(b"WWW.Example.ORG").as_deref(),
            Some("www.example.org")
        );
        for bad in [
            &b"../etc"[..],
            b"a/b",
            b"",
            b"..",
            b"ex\xffample.org",
            b"-x.org",
        ] {
            assert_eq!(normalize_vhost(bad), None);
        }
    }

    #[test]
    fn combined_time_reads_the_stamp_of_written_lines() {
        let line = format!("192.0.2.7 - - {STAMP} {REQ} {AGENT}");
        let mut clock = time::DayCache::default();
        assert_eq!(
            combined_time(line.as_bytes(), &mut clock),
            Some(1_431_857_103)
        );
        assert_eq!(
            combined_time(b"192.0.2.7 - - [17/May/2015:12:05", &mut clock),
            None
        );
        assert_eq!(combined_time(b"no stamp here", &mut clock), None);
    }
}
