//! `pysk-logs resolve`: the reverse-DNS cache for AWStats, built by many
//! concurrent PTR lookups through `hickory-resolver`.
//!
//! The addresses of the given logs (or address lists) are deduplicated;
//! those with a fresh cache entry are not asked again. The rest are looked
//! up with at most `--concurrency` queries in flight, `--attempts` tries
//! each, every try waiting the timeout learned from this run's answers
//! ([`Patience`]), `--timeout` at most. An address no try got an answer for
//! is left as the cache had it, to be asked again next run. The cache is
//! rewritten atomically, merged with what it held, so a failed or
//! interrupted run loses nothing.

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    /// Time for one query attempt at most: the ceiling of the learned
    /// timeout.
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
    /// Lookups that gave no usable name (stored as `*` unless unanswered
    /// or a name was known).
    pub failed: usize,
    /// Of the failed, those no try got an answer for in time: nothing
    /// stored, asked again next run.
    pub unanswered: usize,
    /// The timeout learned from the answers, in seconds, at the run's end
    /// (`--timeout` when too few answers came).
    pub learned_timeout: f64,
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
    /// An error answer (SERVFAIL, refused): stored as `*` unless an older
    /// name is known, which is kept.
    Failed,
    /// No answer in any try: nothing stored, so a known name stays and the
    /// address is asked again next run.
    Unanswered,
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
    // hickory waits the ceiling and does not retry: the tries and their
    // learned timeouts are `Patience::ask`'s.
    opts.timeout = options.timeout;
    opts.attempts = 0;
    opts.cache_size = 0;
    opts.num_concurrent_reqs = 1;
    opts.ndots = 0;
    builder
        .build()
        .map_err(|e| pysk_common::Error::Internal(format!("resolver: {e}")).into())
}

/// Looks up `addr`'s name in up to `attempts` tries; with `confirm`,
/// keeps it only if it resolves back to `addr`.
async fn lookup(
    resolver: &TokioResolver,
    patience: &Patience,
    attempts: usize,
    addr: IpAddr,
    confirm: bool,
) -> Answer {
    let answer = match patience
        .ask(attempts, || resolver.reverse_lookup(addr))
        .await
    {
        None => Answer::Unanswered,
        Some(Ok(lookup)) => {
            let name = lookup.answers().iter().find_map(|r| match &r.data {
                RData::PTR(ptr) => Some(ptr.0.to_ascii()),
                _ => None,
            });
            match name.as_deref().and_then(valid_name) {
                Some(n) => Answer::Name(n),
                None => Answer::NoName,
            }
        }
        Some(Err(NetError::Dns(DnsError::NoRecordsFound(_)))) => Answer::NoName,
        Some(Err(NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)))) => Answer::NoName,
        Some(Err(_)) => Answer::Failed,
    };
    let Answer::Name(name) = answer else {
        return answer;
    };
    if !confirm {
        return Answer::Name(name);
    }
    let forward = format!("{name}.");
    match patience
        .ask(attempts, || resolver.lookup_ip(forward.as_str()))
        .await
    {
        None => Answer::Unanswered,
        Some(Ok(ips)) if ips.iter().any(|ip| ip == addr) => Answer::Name(name),
        Some(Ok(_) | Err(NetError::Dns(DnsError::NoRecordsFound(_)))) => Answer::NoName,
        Some(Err(_)) => Answer::Failed,
    }
}

/// The shortest timeout `resolve` learns: below it, a busy machine's own
/// scheduling would pass for a lost answer.
const FLOOR: Duration = Duration::from_millis(200);
/// The learned timeout is this many times the answers' 99th percentile.
const MULTIPLE: u32 = 4;
/// Answers needed before the timeout is learned; until then a try waits
/// the ceiling, `--timeout`.
const SAMPLES: u64 = 20;
/// Every this many answers the counts so far are halved, so the timeout
/// follows the path as it is now (as TCP's smoothed round-trip time
/// does): the first wave of queries, slowed by being sent all at once,
/// stops weighing on the rest of the run.
const HALF_LIFE: u64 = 1024;
/// How often a waiting try looks at the timeout again while it is not
/// learned yet, so the first tries, sent before anything was learned, stop
/// waiting the ceiling as soon as it is. Once learned, a try wakes at its
/// deadline only (thousands of tries waking every 50 ms would cost the
/// single thread more than the lookups).
const RECHECK: Duration = Duration::from_millis(50);
/// Answer-time buckets: bucket `i` holds times up to `GROWTH^i` ms.
const GROWTH: f64 = 1.125;
/// Enough buckets for an hour, the longest `--timeout`.
const BUCKETS: usize = 130;

/// The timeout learned from this run's answers, the way TCP learns its
/// retransmission timeout: `MULTIPLE` times the 99th percentile of the
/// times answers took, never below `FLOOR` nor above the ceiling.
#[derive(Debug)]
struct Patience {
    ceiling: Duration,
    learned: Mutex<Learned>,
}

/// What the answers so far taught.
#[derive(Debug)]
struct Learned {
    /// Answers per time bucket.
    buckets: Vec<u64>,
    /// Answers counted in `buckets`.
    seen: u64,
    /// Answers since the counts were last halved.
    since_halved: u64,
    /// The timeout they give.
    timeout: Duration,
}

impl Patience {
    fn new(ceiling: Duration) -> Patience {
        Patience {
            ceiling,
            learned: Mutex::new(Learned {
                buckets: vec![0; BUCKETS],
                seen: 0,
                since_halved: 0,
                timeout: ceiling,
            }),
        }
    }

    /// The timeout learned so far (the ceiling before `SAMPLES` answers).
    fn timeout(&self) -> Duration {
        self.learned.lock().map_or(self.ceiling, |l| l.timeout)
    }

    /// When a try due to give up at `deadline` looks at the timeout again.
    fn wake(&self, deadline: tokio::time::Instant) -> tokio::time::Instant {
        let learning = self.learned.lock().is_ok_and(|l| l.seen < SAMPLES);
        if learning {
            deadline.min(tokio::time::Instant::now() + RECHECK)
        } else {
            deadline
        }
    }

    /// How long try number `attempt` (from 0) waits: the learned timeout,
    /// doubled for each try before it, never more than the ceiling.
    fn wait(&self, attempt: usize) -> Duration {
        let doubled = 1u32 << attempt.min(16);
        self.timeout().saturating_mul(doubled).min(self.ceiling)
    }

    /// Learns from an answer that took `took`.
    fn learn(&self, took: Duration) {
        let Ok(mut l) = self.learned.lock() else {
            return;
        };
        if l.since_halved == HALF_LIFE {
            l.buckets.iter_mut().for_each(|n| *n /= 2);
            l.seen = l.buckets.iter().sum();
            l.since_halved = 0;
        }
        l.buckets[bucket(took)] += 1;
        l.seen += 1;
        l.since_halved += 1;
        if l.seen >= SAMPLES {
            let p99 = percentile(&l.buckets, l.seen, 99);
            l.timeout = p99.saturating_mul(MULTIPLE).max(FLOOR).min(self.ceiling);
        }
    }

    /// Runs `ask` once per try, at most `attempts` tries, each given
    /// [`Patience::wait`]; a try that gets no answer in time is dropped and
    /// the next one sent. Returns the first answer of the name server
    /// (which it learns from), or `None` when no try got one.
    async fn ask<T, Fut>(
        &self,
        attempts: usize,
        ask: impl Fn() -> Fut,
    ) -> Option<Result<T, NetError>>
    where
        Fut: Future<Output = Result<T, NetError>>,
    {
        for attempt in 0..attempts.max(1) {
            let sent = tokio::time::Instant::now();
            let query = ask();
            tokio::pin!(query);
            loop {
                let deadline = sent + self.wait(attempt);
                let wake = self.wake(deadline);
                match tokio::time::timeout_at(wake, &mut query).await {
                    Ok(result @ (Ok(_) | Err(NetError::Dns(_)))) => {
                        self.learn(sent.elapsed());
                        return Some(result);
                    }
                    // A timeout of hickory's own, or no reply at all.
                    Ok(Err(_)) => break,
                    Err(_) if tokio::time::Instant::now() >= sent + self.wait(attempt) => break,
                    Err(_) => {}
                }
            }
        }
        None
    }
}

/// The bucket of an answer time.
fn bucket(took: Duration) -> usize {
    let ms = took.as_secs_f64() * 1000.0;
    if ms <= 1.0 {
        return 0;
    }
    // Truncation is the point: a bucket number, bounded just below.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let index = (ms.ln() / GROWTH.ln()).ceil() as usize;
    index.min(BUCKETS - 1)
}

/// The upper bound of the bucket where `pct` percent of the `seen`
/// answers are reached.
fn percentile(buckets: &[u64], seen: u64, pct: u64) -> Duration {
    let wanted = (seen * pct).div_ceil(100);
    let mut counted = 0;
    for (index, n) in buckets.iter().enumerate() {
        counted += n;
        if counted >= wanted {
            let exponent = i32::try_from(index).unwrap_or(i32::MAX);
            return Duration::from_secs_f64(GROWTH.powi(exponent) / 1000.0);
        }
    }
    Duration::MAX
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
    let patience = Arc::new(Patience::new(options.timeout));
    if !todo.is_empty() {
        look_up(&todo, options, &patience, report, |key, answer| {
            record(&mut cache, &mut summary, key, answer);
        })?;
    }
    summary.learned_timeout = patience.timeout().as_secs_f64();
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
    patience: &Arc<Patience>,
    report: &Reporter,
    mut each: impl FnMut([u8; 16], Answer),
) -> Result<(), LogsError> {
    let resolver = Arc::new(build_resolver(options)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| pysk_common::Error::Internal(format!("tokio runtime: {}", cause(&e))))?;
    let (confirm, attempts) = (options.confirm, options.attempts);
    let ask = move |addr| {
        let resolver = Arc::clone(&resolver);
        let patience = Arc::clone(patience);
        async move { lookup(&resolver, &patience, attempts, addr, confirm).await }
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
        Answer::Unanswered => {
            // No verdict at all: the entry stays as it was (a new address
            // keeps `add_missing`'s epoch 0), so it is asked again next run.
            summary.failed += 1;
            summary.unanswered += 1;
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
        "resolve: {} address(es): {} from cache, {} queried, {} resolved, {} failed \
         ({} unanswered, asked again next run), timeout learned {:.2} s, in {:.1} s",
        summary.addresses,
        summary.from_cache,
        summary.queried,
        summary.resolved,
        summary.failed,
        summary.unanswered,
        summary.learned_timeout,
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
    fn the_timeout_is_learned_from_the_answers_between_floor_and_ceiling() {
        let p = Patience::new(Duration::from_secs(2));
        for _ in 0..SAMPLES - 1 {
            p.learn(Duration::from_millis(1));
        }
        assert_eq!(p.timeout(), Duration::from_secs(2), "too few answers yet");
        p.learn(Duration::from_millis(1));
        assert_eq!(p.timeout(), FLOOR, "fast answers: the floor");
        assert_eq!(p.wait(1), 2 * FLOOR);
        assert_eq!(p.wait(9), Duration::from_secs(2), "never above the ceiling");
        // 98 answers in 40 ms, 2 in 300 ms: the 99th percentile is slow.
        let p = Patience::new(Duration::from_secs(2));
        for _ in 0..98 {
            p.learn(Duration::from_millis(40));
        }
        let p99 = percentile(&p.learned.lock().expect("lock").buckets, 98, 99);
        assert!(p99 >= Duration::from_millis(40) && p99 < Duration::from_millis(46));
        assert_eq!(p.timeout(), (p99 * MULTIPLE).max(FLOOR));
        p.learn(Duration::from_millis(300));
        p.learn(Duration::from_millis(300));
        let t = p.timeout();
        assert!(
            t >= Duration::from_millis(1200) && t < Duration::from_millis(1350),
            "{t:?}"
        );
        // An hour-long answer lands in the last bucket.
        assert_eq!(bucket(Duration::from_secs(3600)), BUCKETS - 1);
        assert_eq!(bucket(Duration::ZERO), 0);
    }

    #[test]
    fn old_answers_weigh_less_so_a_slow_start_is_forgotten() {
        let p = Patience::new(Duration::from_secs(2));
        for _ in 0..100 {
            p.learn(Duration::from_secs(1));
        }
        assert_eq!(p.timeout(), Duration::from_secs(2));
        // 2% of all answers were slow, but three half-lives ago.
        for _ in 0..5000 {
            p.learn(Duration::from_millis(10));
        }
        assert_eq!(p.timeout(), FLOOR);
    }

    /// `ask` on paused time: the number of tries made, and the result,
    /// for a name server whose every answer takes `delay` (none: silent).
    fn tries(patience: &Patience, attempts: usize, delay: Option<Duration>) -> (usize, Option<u8>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let sent = std::cell::Cell::new(0);
        let got = runtime.block_on(patience.ask(attempts, || {
            sent.set(sent.get() + 1);
            async move {
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
                Ok::<u8, NetError>(7)
            }
        }));
        (sent.get(), got.map(|r| r.unwrap_or(0)))
    }

    fn taught() -> Patience {
        let p = Patience::new(Duration::from_secs(2));
        for _ in 0..SAMPLES {
            p.learn(Duration::from_millis(10));
        }
        p
    }

    #[test]
    fn an_answer_after_the_learned_timeout_is_found_by_a_longer_retry() {
        // Learned 200 ms; the answer takes 300 ms: the first try gives up,
        // the second waits 400 ms and gets it.
        let p = taught();
        assert_eq!(tries(&p, 2, Some(Duration::from_millis(300))), (2, Some(7)));
        assert_eq!(
            tries(&taught(), 1, Some(Duration::from_millis(300))),
            (1, None)
        );
        // The slow answer was learned: the next try waits for one like it.
        assert!(
            p.timeout() > Duration::from_millis(300),
            "{:?}",
            p.timeout()
        );
        assert_eq!(tries(&p, 1, Some(Duration::from_millis(300))), (1, Some(7)));
        // Before anything is learned a try waits the ceiling.
        let fresh = Patience::new(Duration::from_secs(2));
        assert_eq!(
            tries(&fresh, 1, Some(Duration::from_millis(1900))),
            (1, Some(7))
        );
    }

    #[test]
    fn a_silent_server_costs_the_tries_and_gives_no_answer() {
        let p = taught();
        assert_eq!(tries(&p, 3, None), (3, None));
    }

    #[test]
    fn an_unanswered_lookup_stores_nothing() {
        let todo = keys(&["192.0.2.1", "192.0.2.2"]);
        let mut cache = Cache::default();
        cache.add_missing(&todo);
        cache.set(todo[0], 5, Some("known.example"));
        let mut summary = Summary::default();
        record(&mut cache, &mut summary, todo[0], Answer::Unanswered);
        record(&mut cache, &mut summary, todo[1], Answer::Unanswered);
        let kept = Entry {
            time: 5,
            name: Some("known.example"),
        };
        assert_eq!(cache.get(todo[0]), Some(kept));
        let new = Entry {
            time: 0,
            name: None,
        };
        assert_eq!(cache.get(todo[1]), Some(new), "old: asked next run");
        assert_eq!((summary.failed, summary.unanswered), (2, 2));
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
