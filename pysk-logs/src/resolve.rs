//! `pysk-logs resolve`: the reverse-DNS cache for AWStats, built by many
//! concurrent PTR lookups through `hickory-resolver`.
//!
//! The addresses of the given logs (or address lists) are deduplicated;
//! those with a fresh cache entry are not asked again. The rest are looked
//! up with at most `--concurrency` queries in flight, each bounded by
//! `--timeout` and `--attempts`. The cache is rewritten atomically, merged
//! with what it held, so a failed or interrupted run loses nothing.

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::{DnsError, NetError, runtime::TokioRuntimeProvider};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use serde::Serialize;
use tokio::task::JoinSet;

use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::Reporter;

use crate::dnscache::{self, Cache, Entry, valid_name};
use crate::error::LogsError;
use crate::{format, input, lines, time};
use pysk_common::error::{cause, read_err};

/// What `resolve` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cache file.
    pub cache: PathBuf,
    /// Name servers; empty means those of `/etc/resolv.conf`.
    pub nameservers: Vec<SocketAddr>,
    /// Queries in flight at most.
    pub concurrency: usize,
    /// Time for one query attempt.
    pub timeout: Duration,
    /// Attempts per query.
    pub attempts: usize,
    /// Age after which a name is asked again.
    pub ttl: Duration,
    /// Age after which a failed lookup is tried again.
    pub negative_ttl: Duration,
    /// Keep a name only if it resolves back to the address.
    pub confirm: bool,
    /// Logs or address lists; empty or `-` means stdin.
    pub files: Vec<PathBuf>,
    /// How long to wait for another run's lock.
    pub wait: Duration,
}

/// What a resolve run did, as printed by `--json`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Distinct addresses in the input.
    pub addresses: usize,
    /// Input lines that held no address.
    pub not_addresses: u64,
    /// Addresses answered from a fresh cache entry.
    pub from_cache: usize,
    /// Addresses looked up.
    pub queried: usize,
    /// Lookups that gave a (valid, and with `--confirm` confirmed) name.
    pub resolved: usize,
    /// Lookups that gave no usable name (stored as `*`).
    pub failed: usize,
    /// Entries in the cache file written.
    pub cache_entries: usize,
    /// Seconds the run took.
    pub elapsed: f64,
}

/// How one lookup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// A valid host name.
    Name(String),
    /// The name server says there is no name, or the name is unusable:
    /// stored as `*`.
    NoName,
    /// No answer (timeout, SERVFAIL, refused): stored as `*` unless an
    /// older name is known, which is kept.
    Failed,
}

/// Now, as the cache stores times: seconds since the epoch in 32 bits.
fn now() -> u32 {
    u32::try_from(pysk_common::date::unix_now()).unwrap_or(u32::MAX)
}

/// Collects the distinct addresses of `files` (stdin when empty or `-`):
/// the client of each log line, or a line that is an address; returns
/// their cache keys, sorted.
fn collect(files: &[PathBuf]) -> Result<(Vec<[u8; 16]>, u64), LogsError> {
    let mut addresses = HashSet::new();
    let mut not_addresses = 0u64;
    let mut clock = time::DayCache::default();
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    for path in files {
        let reader = if path == Path::new("-") {
            input::sniff(io::stdin())
        } else {
            input::open(path)
        }
        .map_err(read_err(path))?;
        lines::for_each(reader, lines::MAX_LINE, |event| -> io::Result<()> {
            let lines::Event::Line(line) = event else {
                if event == lines::Event::LongEnd {
                    not_addresses += 1;
                }
                return Ok(());
            };
            let mut scratch = Vec::new();
            let found = match format::parse(line, &mut clock, &mut scratch) {
                Ok(entry) => std::str::from_utf8(entry.host)
                    .ok()
                    .and_then(|h| h.parse().ok()),
                Err(_) => std::str::from_utf8(line)
                    .ok()
                    .and_then(|l| l.trim().parse().ok()),
            };
            match found {
                Some(addr) => {
                    addresses.insert(dnscache::key(addr));
                }
                None if line.iter().all(u8::is_ascii_whitespace) => {}
                None => not_addresses += 1,
            }
            Ok(())
        })
        .map_err(read_err(path))?;
    }
    let mut keys: Vec<[u8; 16]> = addresses.into_iter().collect();
    keys.sort_unstable();
    Ok((keys, not_addresses))
}

fn build_resolver(options: &Options) -> Result<TokioResolver, LogsError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if options.nameservers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| LogsError::ResolvConf {
            reason: match e {
                NetError::Io(io) => cause(&io),
                other => other.to_string(),
            },
        })?
    } else {
        let servers = options
            .nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut config = NameServerConfig::udp(addr.ip());
                config.connections = vec![udp];
                config
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = options.timeout;
    // hickory counts retries after the first attempt.
    opts.attempts = options.attempts.saturating_sub(1);
    opts.cache_size = 0;
    opts.num_concurrent_reqs = 1;
    opts.ndots = 0;
    builder
        .build()
        .map_err(|e| pysk_common::Error::Internal(format!("resolver: {e}")).into())
}

/// Looks up `addr`'s name; with `confirm`, keeps it only if it resolves
/// back to `addr`.
async fn lookup(resolver: &TokioResolver, addr: IpAddr, confirm: bool) -> Answer {
    let answer = match resolver.reverse_lookup(addr).await {
        Ok(lookup) => {
            let name = lookup.answers().iter().find_map(|r| match &r.data {
                RData::PTR(ptr) => Some(ptr.0.to_ascii()),
                _ => None,
            });
            match name.as_deref().and_then(valid_name) {
                Some(n) => Answer::Name(n),
                None => Answer::NoName,
            }
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(_))) => Answer::NoName,
        Err(NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain))) => Answer::NoName,
        Err(_) => Answer::Failed,
    };
    match answer {
        Answer::Name(name) if confirm => match resolver.lookup_ip(format!("{name}.")).await {
            Ok(ips) if ips.iter().any(|ip| ip == addr) => Answer::Name(name),
            Ok(_) => Answer::NoName,
            Err(NetError::Dns(DnsError::NoRecordsFound(_))) => Answer::NoName,
            Err(_) => Answer::Failed,
        },
        other => other,
    }
}

/// Whether `entry` is still good at `now`.
fn fresh(entry: &Entry<'_>, now: u32, options: &Options) -> bool {
    let ttl = if entry.name.is_some() {
        options.ttl
    } else {
        options.negative_ttl
    };
    entry.time <= now && u64::from(now - entry.time) < ttl.as_secs()
}

/// Runs `resolve`: under the cache's lock, the addresses of the input,
/// those without a fresh cache entry looked up, the cache saved with what
/// was found.
pub fn run(options: &Options, report: &Reporter) -> Result<(Summary, Outcome), LogsError> {
    let started = Instant::now();
    let _lock = lock(options)?;
    // The input first: its set of addresses is the largest thing held
    // before the cache is loaded.
    let (mut todo, not_addresses) = collect(&options.files)?;
    let mut cache = load(&options.cache, report)?;
    let addresses = todo.len();
    let now = now();
    todo.retain(|k| cache.get(*k).is_none_or(|e| !fresh(&e, now, options)));
    let mut summary = Summary {
        addresses,
        not_addresses,
        from_cache: addresses - todo.len(),
        queried: todo.len(),
        ..Summary::default()
    };
    cache.add_missing(&todo);
    if !todo.is_empty() {
        look_up(&todo, options, report, |key, answer| {
            record(&mut cache, &mut summary, key, answer);
        })?;
    }
    summary.cache_entries = cache.len();
    cache.save(&options.cache)?;
    summary.elapsed = started.elapsed().as_secs_f64();
    Ok((summary, Outcome::Success))
}

/// The cache's own lock, `<cache>.lock`: one run per cache at a time.
fn lock(options: &Options) -> Result<Lock, LogsError> {
    let mut path = options.cache.clone().into_os_string();
    path.push(".lock");
    Ok(Lock::acquire(Path::new(&path), options.wait)?)
}

/// The cache at `path`; lines that are no cache entry are reported and
/// dropped.
fn load(path: &Path, report: &Reporter) -> Result<Cache, LogsError> {
    let (cache, loaded) = Cache::load(path)?;
    if loaded.bad_lines > 0 {
        report.warn(format!(
            "{}:{}: {} line(s) that are no cache entry, dropped",
            path.display(),
            loaded.first_bad,
            loaded.bad_lines
        ));
    }
    Ok(cache)
}

/// Looks up the addresses stored under the keys `todo` on a
/// current-thread runtime, handing each answer to `each` as it comes, with
/// a progress line on a terminal.
fn look_up(
    todo: &[[u8; 16]],
    options: &Options,
    report: &Reporter,
    mut each: impl FnMut([u8; 16], Answer),
) -> Result<(), LogsError> {
    let resolver = Arc::new(build_resolver(options)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| pysk_common::Error::Internal(format!("tokio runtime: {}", cause(&e))))?;
    let confirm = options.confirm;
    let ask = move |addr| {
        let resolver = Arc::clone(&resolver);
        async move { lookup(&resolver, addr, confirm).await }
    };
    let mut progress = Progress::new(report, todo.len());
    let result = runtime.block_on(answers(todo, options.concurrency, ask, |key, answer| {
        progress.step();
        each(key, answer);
    }));
    progress.finish();
    result
}

/// Runs `ask` for the address of every key of `todo`, at most
/// `concurrency` at a time, and hands each answer to `each`. A task that
/// dies is a fault of the tool, not a failed lookup: it ends the run as
/// [`pysk_common::Error::Internal`] before anything is saved.
async fn answers<F, Fut>(
    todo: &[[u8; 16]],
    concurrency: usize,
    ask: F,
    mut each: impl FnMut([u8; 16], Answer),
) -> Result<(), LogsError>
where
    F: Fn(IpAddr) -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut next = todo.iter();
    loop {
        while tasks.len() < concurrency.max(1) {
            let Some(&key) = next.next() else { break };
            let asked = ask(dnscache::addr(key));
            tasks.spawn(async move { (key, asked.await) });
        }
        match tasks.join_next().await {
            Some(Ok((key, answer))) => each(key, answer),
            Some(Err(e)) => {
                let why = format!("resolve: a lookup task died ({e}); the cache is left as it was");
                return Err(pysk_common::Error::Internal(why).into());
            }
            None => return Ok(()),
        }
    }
}

/// Records `answer` for the address stored under `key` in `cache`, and
/// counts it in `summary`.
fn record(cache: &mut Cache, summary: &mut Summary, key: [u8; 16], answer: Answer) {
    let time = now();
    match answer {
        Answer::Name(name) => {
            summary.resolved += 1;
            cache.set(key, time, Some(&name));
        }
        Answer::NoName => {
            summary.failed += 1;
            cache.set(key, time, None);
        }
        Answer::Failed => {
            summary.failed += 1;
            // A passing failure does not wipe a name we had; it stays old,
            // so it is asked again next time.
            if cache.get(key).is_none_or(|e| e.name.is_none()) {
                cache.set(key, time, None);
            }
        }
    }
}

/// The progress line of the lookups, redrawn at most five times a second
/// through [`Reporter::progress`] (only on a terminal).
struct Progress<'r> {
    report: &'r Reporter,
    total: usize,
    done: usize,
    last: Instant,
    shown: bool,
}

impl<'r> Progress<'r> {
    fn new(report: &'r Reporter, total: usize) -> Progress<'r> {
        Progress {
            report,
            total,
            done: 0,
            last: Instant::now(),
            shown: false,
        }
    }

    /// One more answer.
    fn step(&mut self) {
        self.done += 1;
        if self.last.elapsed() > Duration::from_millis(200) {
            self.last = Instant::now();
            self.shown = true;
            self.draw();
        }
    }

    fn draw(&self) {
        self.report
            .progress(format!("resolved {}/{}", self.done, self.total));
    }

    /// Ends the line, with the final count, when one was drawn.
    fn finish(self) {
        if self.shown {
            self.draw();
            self.report.progress_done();
        }
    }
}

/// The lines of the summary printed on stderr.
pub fn describe(summary: &Summary) -> String {
    format!(
        "resolve: {} address(es): {} from cache, {} queried, {} resolved, {} failed, in {:.1} s",
        summary.addresses,
        summary.from_cache,
        summary.queried,
        summary.resolved,
        summary.failed,
        summary.elapsed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            cache: PathBuf::new(),
            nameservers: Vec::new(),
            concurrency: 1,
            timeout: Duration::from_secs(1),
            attempts: 1,
            ttl: Duration::from_secs(7 * 86_400),
            negative_ttl: Duration::from_secs(6 * 3600),
            confirm: false,
            files: Vec::new(),
            wait: Duration::ZERO,
        }
    }

    #[test]
    fn names_expire_after_ttl_and_failures_after_negative_ttl() {
        let o = options();
        let name = Entry {
            time: 1_000_000,
            name: Some("h.example"),
        };
        let star = Entry {
            time: 1_000_000,
            name: None,
        };
        assert!(fresh(&name, 1_000_000 + 6 * 86_400, &o));
        assert!(!fresh(&name, 1_000_000 + 7 * 86_400, &o));
        assert!(fresh(&star, 1_000_000 + 5 * 3600, &o));
        assert!(!fresh(&star, 1_000_000 + 6 * 3600, &o));
        // An entry from the future (a clock set back) is asked again.
        assert!(!fresh(&name, 999_000, &o));
    }

    fn keys(addrs: &[&str]) -> Vec<[u8; 16]> {
        let mut keys: Vec<[u8; 16]> = addrs
            .iter()
            .map(|a| dnscache::key(a.parse().expect("address")))
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn a_lookup_task_that_dies_is_an_internal_fault_not_a_failed_lookup() {
        let todo = keys(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
        let dead = dnscache::addr(todo[1]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut got = Vec::new();
        let ask = move |addr: IpAddr| async move {
            if addr == dead {
                panic!("this lookup dies");
            }
            Answer::NoName
        };
        let result = runtime.block_on(answers(&todo, 1, ask, |key, answer| {
            got.push((key, answer));
        }));
        let err = result.expect_err("a task died");
        assert!(
            matches!(&err, LogsError::Common(pysk_common::Error::Internal(_))),
            "{err}"
        );
        assert_eq!(
            pysk_common::exit::ToolError::exit_code(&err),
            pysk_common::exit::SOFTWARE
        );
        assert!(err.to_string().contains("a lookup task died"), "{err}");
        assert_eq!(
            got,
            [(todo[0], Answer::NoName)],
            "no verdict on the dead one"
        );
    }

    #[test]
    fn every_answer_comes_once_and_a_passing_failure_keeps_a_known_name() {
        let todo = keys(&["192.0.2.1", "192.0.2.2", "2001:db8::1"]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut got = Vec::new();
        let ask = |_: IpAddr| async { Answer::Failed };
        runtime
            .block_on(answers(&todo, 2, ask, |key, _| got.push(key)))
            .expect("all answered");
        got.sort_unstable();
        assert_eq!(got, todo);

        let mut cache = Cache::default();
        cache.add_missing(&todo);
        cache.set(todo[0], 1, Some("known.example"));
        let mut summary = Summary::default();
        record(&mut cache, &mut summary, todo[0], Answer::Failed);
        record(&mut cache, &mut summary, todo[1], Answer::Failed);
        record(
            &mut cache,
            &mut summary,
            todo[2],
            Answer::Name("h.example".into()),
        );
        assert_eq!(
            cache.get(todo[0]).and_then(|e| e.name),
            Some("known.example")
        );
        assert_eq!(cache.get(todo[1]).and_then(|e| e.name), None);
        assert_eq!(cache.get(todo[2]).and_then(|e| e.name), Some("h.example"));
        assert_eq!((summary.resolved, summary.failed), (1, 2));
    }

    #[test]
    fn addresses_come_from_log_lines_and_plain_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mixed");
        std::fs::write(
            &path,
            "www.example.org 192.0.2.7 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n\
             192.0.2.7\n\
             2001:DB8::1\n\
             \n\
             not an address\n\
             192.0.2.8 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 1\n",
        )
        .expect("write");
        let (addrs, not) = collect(std::slice::from_ref(&path)).expect("collect");
        let mut addrs: Vec<String> = addrs
            .iter()
            .map(|k| dnscache::addr(*k).to_string())
            .collect();
        addrs.sort();
        assert_eq!(addrs, ["192.0.2.7", "192.0.2.8", "2001:db8::1"]);
        assert_eq!(not, 1);
    }
}
