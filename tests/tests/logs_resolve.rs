//! End-to-end tests of `pysk-logs resolve` against a DNS server the test
//! runs on loopback, and of AWStats showing the names it found.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pysk_tests::dns::{DnsServer, Reply};
use pysk_tests::{AwstatsDb, awstats_update, bin, copy_dir, examples, require, scratch, tool};

const DELAY: Duration = Duration::from_millis(30);

/// The rules of the test fleet: 192.0.2.1–20 have names, 21–25 are
/// NXDOMAIN, 26–28 SERVFAIL, 29–30 never answered, 31 answers with a name
/// that is no host name; 2001:db8::1 has a name.
fn rule(addr: IpAddr) -> Reply {
    match addr {
        IpAddr::V4(v4) => match v4.octets()[3] {
            n @ 1..=20 => Reply::Name(format!("host-{n}.example.org"), DELAY),
            21..=25 => Reply::NxDomain(DELAY),
            26..=28 => Reply::ServFail(DELAY),
            29 | 30 => Reply::Silence,
            31 => Reply::Name("_service.example.org".into(), DELAY),
            _ => Reply::NxDomain(Duration::ZERO),
        },
        IpAddr::V6(_) => Reply::Name("Six.Example.NET".into(), DELAY),
    }
}

fn server(forward: HashMap<String, Vec<IpAddr>>) -> DnsServer {
    DnsServer::start(
        "127.0.0.1:0".parse().expect("addr"),
        Box::new(rule),
        forward,
        // Shorter than the shortest try (the learned timeout's 200 ms
        // floor), so a silent query has left the count before the next
        // one is sent.
        Duration::from_millis(150),
    )
    .expect("start the test DNS server")
}

fn addresses(dir: &Path) -> PathBuf {
    let path = dir.join("addresses");
    let mut text: String = (1..=31)
        .map(|n| format!("192.0.2.{n}\n192.0.2.{n}\n"))
        .collect();
    text.push_str("2001:db8::1\nnot an address\n");
    fs::write(&path, text).expect("write the address list");
    path
}

fn resolve(dns: &DnsServer, cache: &Path, extra: &[&str], input: &Path) -> Output {
    // Every wait under 333 ms, the interval at which hickory's UDP client
    // sends a query again within one try: one query per try.
    let mut options = vec!["--concurrency", "4", "--timeout", "0.3", "--attempts", "1"];
    options.extend_from_slice(extra);
    resolve_with(dns, cache, &options, input)
}

/// `resolve --json` with these `options` only.
fn resolve_with(dns: &DnsServer, cache: &Path, options: &[&str], input: &Path) -> Output {
    tool("pysk-logs")
        .args(["resolve", "--json"])
        .args(options)
        .arg("--nameserver")
        .arg(dns.addr().to_string())
        .arg("--cache")
        .arg(cache)
        .arg(input)
        .succeeds()
}

/// The JSON summary of a resolve run that succeeded.
fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

/// The cache as address → (epoch, name).
fn cache_entries(path: &Path) -> BTreeMap<String, (i64, String)> {
    fs::read_to_string(path)
        .expect("cache file")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{l}");
            (
                f[1].to_owned(),
                (f[0].parse().expect("epoch"), f[2].to_owned()),
            )
        })
        .collect()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[test]
fn resolves_names_marks_failures_and_keeps_to_the_concurrency() {
    let dir = scratch();
    let dns = server(HashMap::new());
    let cache = dir.path().join("dnscache.txt");
    let out = resolve(&dns, &cache, &[], &addresses(dir.path()));
    let s = summary(&out);
    assert_eq!(s["addresses"], 32);
    assert_eq!(s["not_addresses"], 1);
    assert_eq!(s["queried"], 32);
    assert_eq!(s["resolved"], 21);
    assert_eq!(s["failed"], 11);
    assert_eq!(s["unanswered"], 2);
    assert_eq!(s["from_cache"], 0);

    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 32);
    let start = now() - 60;
    for (addr, (epoch, name)) in &entries {
        let v4 = addr.parse::<IpAddr>().ok().and_then(|a| match a {
            IpAddr::V4(v4) => Some(v4.octets()[3]),
            IpAddr::V6(_) => None,
        });
        if matches!(v4, Some(29 | 30)) {
            // Never answered: no verdict, epoch 0, asked again next run.
            assert_eq!((*epoch, name.as_str()), (0, "*"), "{addr}");
            continue;
        }
        assert!(*epoch >= start && *epoch <= now(), "{addr}: {epoch}");
        let expected = match v4 {
            None => "six.example.net".to_owned(),
            Some(n @ 1..=20) => format!("host-{n}.example.org"),
            Some(_) => "*".to_owned(),
        };
        assert_eq!(name, &expected, "{addr}");
    }
    let stats = dns.stats();
    assert_eq!(stats.queries.load(Ordering::SeqCst), 32);
    assert_eq!(
        stats.max_in_flight.load(Ordering::SeqCst),
        4,
        "never more than --concurrency"
    );

    // A second run answers everything from the cache but the two that
    // never answered, which it asks again.
    let again = summary(&resolve(&dns, &cache, &[], &addresses(dir.path())));
    assert_eq!(again["from_cache"], 30);
    assert_eq!(again["queried"], 2);
    assert_eq!(again["unanswered"], 2);
    assert_eq!(stats.queries.load(Ordering::SeqCst), 34);
    assert_eq!(cache_entries(&cache), entries);
}

/// A server that answers 192.0.2.1–250 at once with a name and
/// 198.51.100.1 only after 300 ms (counting the queries for it in
/// `slow_asked`); 192.0.2.251–254 are never answered.
fn slow_rule(addr: IpAddr, slow_asked: &AtomicUsize) -> Reply {
    match addr {
        IpAddr::V4(v4) if v4.octets()[..3] == [198, 51, 100] => {
            slow_asked.fetch_add(1, Ordering::SeqCst);
            Reply::Name("slow.example.org".into(), Duration::from_millis(300))
        }
        IpAddr::V4(v4) => match v4.octets()[3] {
            n @ 1..=250 => Reply::Name(format!("fast-{n}.example.org"), Duration::ZERO),
            _ => Reply::Silence,
        },
        IpAddr::V6(_) => Reply::NxDomain(Duration::ZERO),
    }
}

fn slow_server() -> (DnsServer, Arc<AtomicUsize>) {
    let slow_asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&slow_asked);
    let dns = DnsServer::start(
        "127.0.0.1:0".parse().expect("addr"),
        Box::new(move |addr| slow_rule(addr, &counter)),
        HashMap::new(),
        Duration::from_millis(150),
    )
    .expect("start the test DNS server");
    (dns, slow_asked)
}

/// The fast addresses 192.0.2.1–250 (looked up first: they sort first),
/// then `more`.
fn fast_then(dir: &Path, more: &[&str]) -> PathBuf {
    let path = dir.join("in");
    let mut text: String = (1..=250).map(|n| format!("192.0.2.{n}\n")).collect();
    for addr in more {
        text.push_str(addr);
        text.push('\n');
    }
    fs::write(&path, text).expect("write the address list");
    path
}

#[test]
fn an_answer_after_the_learned_timeout_but_before_the_ceiling_is_found() {
    let dir = scratch();
    let (dns, slow_asked) = slow_server();
    let cache = dir.path().join("dnscache.txt");
    let input = fast_then(dir.path(), &["198.51.100.1"]);
    // The ceiling is 2 s; the 250 answers at once teach the 200 ms floor,
    // so the first try for the slow address gives up at 200 ms and the
    // second, waiting 400 ms, gets its answer after 300 ms.
    let options = ["--concurrency", "4", "--timeout", "2", "--attempts", "2"];
    let s = summary(&resolve_with(&dns, &cache, &options, &input));
    assert_eq!(s["queried"], 251);
    assert_eq!(s["resolved"], 251);
    assert_eq!(s["unanswered"], 0);
    assert_eq!(s["learned_timeout"], 0.2, "learned below the slow answer");
    // The first try gave up; hickory's UDP client may send the second
    // try's query once more (after 333 ms) before its answer comes.
    let asked = slow_asked.load(Ordering::SeqCst);
    assert!((2..=3).contains(&asked), "{asked} queries for the slow one");
    let entries = cache_entries(&cache);
    assert_eq!(entries["198.51.100.1"].1, "slow.example.org");
    assert_eq!(entries["192.0.2.250"].1, "fast-250.example.org");
}

#[test]
fn a_silent_address_keeps_its_cache_entry_and_is_asked_again() {
    let dir = scratch();
    let (dns, _) = slow_server();
    let cache = dir.path().join("dnscache.txt");
    let old_name = now() - 30 * 86_400;
    let old_star = now() - 7 * 3600;
    fs::write(
        &cache,
        format!(
            "{old_name} 192.0.2.251 was-known.example.org\n\
             {old_star} 192.0.2.252 *\n"
        ),
    )
    .expect("write cache");
    let input = fast_then(dir.path(), &["192.0.2.251", "192.0.2.252", "192.0.2.253"]);
    let options = ["--concurrency", "4", "--timeout", "2", "--attempts", "2"];
    let s = summary(&resolve_with(&dns, &cache, &options, &input));
    assert_eq!(s["queried"], 253);
    assert_eq!(s["resolved"], 250);
    assert_eq!(s["failed"], 3);
    assert_eq!(s["unanswered"], 3);
    assert_eq!(s["learned_timeout"], 0.2);
    let entries = cache_entries(&cache);
    assert_eq!(
        entries["192.0.2.251"],
        (old_name, "was-known.example.org".to_owned()),
        "the known name is neither erased nor renewed"
    );
    assert_eq!(entries["192.0.2.252"], (old_star, "*".to_owned()));
    assert_eq!(entries["192.0.2.253"], (0, "*".to_owned()));

    // Next run: the fast ones come from the cache, the silent ones are
    // asked again, one query each (a 0.3 s ceiling, nothing learned).
    let before = dns.stats().queries.load(Ordering::SeqCst);
    let options = ["--concurrency", "4", "--timeout", "0.3", "--attempts", "1"];
    let again = summary(&resolve_with(&dns, &cache, &options, &input));
    assert_eq!(again["from_cache"], 250);
    assert_eq!(again["queried"], 3);
    assert_eq!(again["unanswered"], 3);
    assert_eq!(
        again["learned_timeout"], 0.3,
        "too few answers: the ceiling"
    );
    assert_eq!(dns.stats().queries.load(Ordering::SeqCst), before + 3);
    assert_eq!(cache_entries(&cache), entries);
}

#[test]
fn expired_entries_are_asked_again_and_unknown_ones_kept() {
    let dir = scratch();
    let dns = server(HashMap::new());
    let cache = dir.path().join("dnscache.txt");
    let old_name = now() - 8 * 86_400;
    let old_star = now() - 7 * 3600;
    let fresh = now() - 3600;
    fs::write(
        &cache,
        format!(
            "{old_name} 192.0.2.1 stale.example.org\n\
             {old_star} 192.0.2.2 *\n\
             {fresh} 192.0.2.3 cached.example.org\n\
             {fresh} 192.0.2.21 *\n\
             {fresh} 198.51.100.7 unrelated.example.com\n"
        ),
    )
    .expect("write cache");
    let input = dir.path().join("in");
    fs::write(&input, "192.0.2.1\n192.0.2.2\n192.0.2.3\n192.0.2.21\n").expect("write");
    let s = summary(&resolve(&dns, &cache, &[], &input));
    assert_eq!(s["queried"], 2);
    assert_eq!(s["from_cache"], 2);
    assert_eq!(dns.stats().queries.load(Ordering::SeqCst), 2);
    let entries = cache_entries(&cache);
    assert_eq!(entries["192.0.2.1"].1, "host-1.example.org");
    assert!(entries["192.0.2.1"].0 > old_name);
    assert_eq!(entries["192.0.2.2"].1, "host-2.example.org");
    assert_eq!(
        entries["192.0.2.3"],
        (fresh, "cached.example.org".to_owned())
    );
    assert_eq!(
        entries["198.51.100.7"],
        (fresh, "unrelated.example.com".to_owned())
    );
}

#[test]
fn a_timeout_keeps_an_old_name_and_confirm_drops_unconfirmed_names() {
    let dir = scratch();
    let mut forward = HashMap::new();
    forward.insert(
        "host-1.example.org".to_owned(),
        vec!["192.0.2.1".parse().expect("ip")],
    );
    forward.insert(
        "host-2.example.org".to_owned(),
        vec!["192.0.2.99".parse().expect("ip")],
    );
    let dns = server(forward);
    let cache = dir.path().join("dnscache.txt");
    let old = now() - 30 * 86_400;
    fs::write(&cache, format!("{old} 192.0.2.29 was-known.example.org\n")).expect("write");
    let input = dir.path().join("in");
    fs::write(&input, "192.0.2.1\n192.0.2.2\n192.0.2.29\n").expect("write");
    let s = summary(&resolve(&dns, &cache, &["--confirm"], &input));
    assert_eq!(s["resolved"], 1);
    let entries = cache_entries(&cache);
    assert_eq!(entries["192.0.2.1"].1, "host-1.example.org");
    assert_eq!(entries["192.0.2.2"].1, "*", "does not resolve back");
    assert_eq!(
        entries["192.0.2.29"],
        (old, "was-known.example.org".to_owned())
    );
}

#[test]
fn awstats_shows_the_names_from_the_cache() {
    let Some(awstats) = require("/usr/lib/cgi-bin/awstats.pl", "awstats") else {
        return;
    };
    let dir = scratch();
    let spool = dir.path().join("spool");
    copy_dir(&examples().join("inbox"), &spool.join("inbox"));
    tool("pysk-logs")
        .args(["split", "-q", "--spool"])
        .arg(&spool)
        .succeeds();
    let vhost = "www.example.org";
    let pending: Vec<PathBuf> = fs::read_dir(spool.join("pending").join(vhost))
        .expect("pending")
        .map(|e| e.expect("entry").path())
        .collect();
    // Every IPv4 client gets a name made of its address.
    let dns = DnsServer::start(
        "127.0.0.1:0".parse().expect("addr"),
        Box::new(|addr| match addr {
            IpAddr::V4(v4) => Reply::Name(
                format!("c-{}.clients.example.net", v4.to_string().replace('.', "-")),
                Duration::ZERO,
            ),
            IpAddr::V6(_) => Reply::NxDomain(Duration::ZERO),
        }),
        HashMap::new(),
        Duration::from_millis(100),
    )
    .expect("dns");
    let cache = dir.path().join("dnscache.txt");
    let s = summary(
        &tool("pysk-logs")
            .args([
                "resolve",
                "--json",
                "--nameserver",
                &dns.addr().to_string(),
                "--cache",
            ])
            .arg(&cache)
            .args(&pending)
            .succeeds(),
    );
    assert!(s["resolved"].as_u64().expect("count") > 10);

    let files: Vec<String> = pending.iter().map(|p| p.display().to_string()).collect();
    let log_file = format!("{} merge {} |", bin("pysk-logs").display(), files.join(" "));
    let extra = format!("DNSLookup=2\nDNSStaticCacheFile=\"{}\"\n", cache.display());
    let (out, data) = awstats_update(&awstats, dir.path(), vhost, &log_file, &extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let db = AwstatsDb::load(&data, "052015", vhost);
    // The visitors section lists hosts by name where the cache had one.
    let visitors = db.visitors();
    assert!(!visitors.is_empty());
    let named = visitors
        .iter()
        .filter(|v| v.ends_with(".clients.example.net"))
        .count();
    let v6 = visitors.iter().filter(|v| v.contains(':')).count();
    assert_eq!(
        named + v6,
        visitors.len(),
        "every IPv4 visitor shown by name: {visitors:?}"
    );
    assert!(
        visitors.contains(&"c-83-149-9-216.clients.example.net"),
        "{visitors:?}"
    );
}
