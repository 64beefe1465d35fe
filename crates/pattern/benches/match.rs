//! The matching benchmark: scanbridge's `RuleSet` against the `quamina` crate (0.7.0) on the shared
//! bench kit's events and rule sets, in one process, single-threaded, several interleaved passes.
//!
//! Run it through `scripts/bench-match` (which generates the events and the scale rule sets). Prints
//! one line per set on stdout, `SET RULES MATCHES SCANBRIDGE_EPS QUAMINA_EPS RATIO [# note]`, where
//! SCANBRIDGE_EPS is `RuleSet::matches_prevalidated_with` (skips the values no rule names without
//! validating them, as quamina does; the daemon routes with it, since ingest has already validated every
//! event) and the note gives `RuleSet::matches_with` (validates every byte, as the reference does); details
//! (compile times, heap peaks, which events were checked against what) go to stderr. Every count is
//! checked: against expected-matches.tsv (event-ruler's answers) when all 213,068 events run, otherwise
//! event by event against the reference interpreter. Exits 1 on any wrong count.
//!
//! `--reference-totals CACHE` checks each set's total against the reference interpreter run over every
//! event (two threads; the totals are cached in CACHE, keyed by the rules' and events' bytes): the
//! daemon's own sets (ECR and Inspector2 events, `scan_100`, `scan_10k`) have no event-ruler counts.
//! On those sets quamina runs the rules it accepts, and its count is checked against scanbridge's on
//! the same rules.
//!
//! `--compile-only SET` compiles one set and reports compile time, peak heap (a counting allocator)
//! and the process's peak resident memory (VmHWM), for the 10k/100k-rule figures.
//!
//! For profiling only: `BENCH_SIMD=avx512|avx2|sse2|portable` picks the byte classifier (rather than the
//! fastest this CPU has), `BENCH_NO_QUAMINA=1` skips quamina, `BENCH_ONLY_PREVALIDATED=1` times only the
//! prevalidated door (counts are still checked), and `--profile prevalidated|validating|quamina` runs
//! one untimed pass of that door per set and nothing else (for callgrind; see BENCHMARKS.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use scanbridge_pattern::{Event, Pattern, RuleSet, Scratch, Simd};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let now = CURRENT.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const FULL: usize = 213_068;

struct Args {
    events_file: PathBuf,
    count: usize,
    kit: PathBuf,
    scale_dir: PathBuf,
    sets: Option<Vec<String>>,
    passes: usize,
    compile_only: Option<String>,
    profile: Option<String>,
    cpu_clock: bool,
    /// Report each engine's fastest pass rather than the mean of its passes (`--stat best`).
    best: bool,
    reference_totals: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        events_file: PathBuf::new(),
        count: FULL,
        kit: PathBuf::new(),
        scale_dir: PathBuf::new(),
        sets: None,
        passes: 3,
        compile_only: None,
        profile: None,
        cpu_clock: false,
        best: false,
        reference_totals: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{k} needs a value")))
        };
        match k.as_str() {
            "--events-file" => a.events_file = v().into(),
            "--count" => a.count = v().parse().unwrap_or_else(|_| die("--count N")),
            "--kit" => a.kit = v().into(),
            "--scale-dir" => a.scale_dir = v().into(),
            "--sets" => a.sets = Some(v().split(',').map(str::to_string).collect()),
            "--passes" => a.passes = v().parse().unwrap_or_else(|_| die("--passes N")),
            "--compile-only" => a.compile_only = Some(v()),
            "--profile" => a.profile = Some(v()),
            "--reference-totals" => a.reference_totals = Some(v().into()),
            "--clock" => {
                a.cpu_clock = match v().as_str() {
                    "cpu" => true,
                    "wall" => false,
                    _ => die("--clock cpu|wall"),
                }
            }
            "--stat" => {
                a.best = match v().as_str() {
                    "best" => true,
                    "mean" => false,
                    _ => die("--stat mean|best"),
                }
            }
            "--bench" => {} // cargo bench passes this
            other => die(&format!("unknown argument {other}")),
        }
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("bench-match: {msg}");
    std::process::exit(2)
}

fn rules_file(a: &Args, set: &str) -> PathBuf {
    let kit = a.kit.join("rules").join(format!("{set}.rules"));
    if kit.exists() {
        kit
    } else {
        a.scale_dir.join(format!("{set}.rules"))
    }
}

/// `NAME<TAB>PATTERN` lines.
fn load_rules(path: &Path) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (n, p) = l
                .split_once('\t')
                .unwrap_or_else(|| die(&format!("bad rule line {l}")));
            (n.to_string(), p.to_string())
        })
        .collect()
}

/// Times a pass: wall time, or with `--clock cpu` the benchmark thread's time on a CPU
/// (`CLOCK_THREAD_CPUTIME_ID`), which time slices given to other processes do not count in.
struct Clock {
    cpu: bool,
    wall: Instant,
    on_cpu_ns: u64,
}

fn on_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        die("--clock cpu: clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Clock {
    fn start(cpu: bool) -> Clock {
        Clock {
            cpu,
            wall: Instant::now(),
            on_cpu_ns: if cpu { on_cpu_ns() } else { 0 },
        }
    }

    fn seconds(&self) -> f64 {
        if self.cpu {
            (on_cpu_ns() - self.on_cpu_ns) as f64 / 1e9
        } else {
            self.wall.elapsed().as_secs_f64()
        }
    }
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Compiles a set; returns the rule set, compile seconds and peak heap growth in bytes.
fn compile(rules: &[(String, String)]) -> (RuleSet<u32>, f64, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let t = Instant::now();
    let mut rs = RuleSet::new();
    for (i, (name, text)) in rules.iter().enumerate() {
        let p = Pattern::parse(text).unwrap_or_else(|e| die(&format!("rule {name}: {e}")));
        rs.add(i as u32, &p);
    }
    let secs = t.elapsed().as_secs_f64();
    (rs, secs, PEAK.load(Ordering::Relaxed) - base)
}

static PANIC_MSG: Mutex<String> = Mutex::new(String::new());

fn panic_text() -> String {
    PANIC_MSG.lock().map(|m| m.clone()).unwrap_or_default()
}

struct Quamina {
    q: quamina::Quamina<u32>,
    note: String,
    /// The rules it runs (all, unless it rejected some of a set where that is allowed).
    accepted: Vec<u32>,
}

/// Builds quamina for the set, or says why it cannot run it. With `partial`, a set some of whose
/// rules quamina rejects runs with the rules it accepts (their numbers are in `accepted`).
fn quamina_for(rules: &[(String, String)], partial: bool) -> Result<(Quamina, f64), String> {
    let build = |budget: Option<usize>| -> Result<(quamina::Quamina<u32>, f64, Vec<u32>), String> {
        let t = Instant::now();
        let mut q = match budget {
            None => quamina::Quamina::new(),
            Some(b) => quamina::QuaminaBuilder::new()
                .with_arena_byte_budget(b)
                .build()
                .map_err(|e| format!("builder: {e}"))?,
        };
        let mut rejected = 0;
        let mut first = String::new();
        let mut accepted = Vec::new();
        for (i, (_, text)) in rules.iter().enumerate() {
            match catch_unwind(AssertUnwindSafe(|| q.add_pattern(i as u32, text))) {
                Ok(Ok(())) => accepted.push(i as u32),
                Ok(Err(e)) => {
                    rejected += 1;
                    if first.is_empty() {
                        first = e.to_string();
                    }
                }
                Err(_) => return Err(format!("quamina panics adding rule {i}: {}", panic_text())),
            }
        }
        let why = format!(
            "quamina rejects {rejected} of {} rules ({first})",
            rules.len()
        );
        if rejected > 0 && (!partial || accepted.is_empty()) {
            return Err(why);
        }
        Ok((q, t.elapsed().as_secs_f64(), accepted))
    };
    let wrap = |(q, s, accepted): (quamina::Quamina<u32>, f64, Vec<u32>), note: String| {
        let mut note = note;
        if accepted.len() < rules.len() {
            let n = rules.len() - accepted.len();
            let part = format!(
                "quamina runs the {} of {} rules it accepts (rejects {n})",
                accepted.len(),
                rules.len()
            );
            note = if note.is_empty() {
                part
            } else {
                format!("{part}; {note}")
            };
        }
        (Quamina { q, note, accepted }, s)
    };
    match build(None) {
        Ok(b) => Ok(wrap(b, String::new())),
        Err(e) if e.contains("budget") || e.contains("arena") => {
            let b =
                build(Some(1 << 36)).map_err(|e2| format!("{e}; with a raised budget: {e2}"))?;
            Ok(wrap(
                b,
                format!("quamina needed a raised arena budget (by default: {e})"),
            ))
        }
        Err(e) => Err(e),
    }
}

fn scanbridge_pass(
    rs: &RuleSet<u32>,
    events: &[&[u8]],
    prevalidated: bool,
    s: &mut Scratch,
    out: &mut Vec<u32>,
) -> usize {
    let mut n = 0;
    for e in events {
        let r = if prevalidated {
            rs.matches_prevalidated_with(e, s, out)
        } else {
            rs.matches_with(e, s, out)
        };
        match r {
            Ok(()) => n += out.len(),
            Err(err) => die(&format!("scanbridge rejects an event: {err}")),
        }
    }
    n
}

fn quamina_pass(q: &quamina::Quamina<u32>, events: &[&[u8]]) -> Result<usize, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut n = 0;
        for e in events {
            match q.matches_for_event(e) {
                Ok(v) => n += v.len(),
                Err(err) => return Err(format!("quamina rejects an event: {err}")),
            }
        }
        Ok(n)
    }))
    .unwrap_or_else(|_| Err(format!("quamina panics while matching: {}", panic_text())))
}

/// Event-by-event comparison with the reference interpreter; returns (events checked, total matches).
fn reference_check(
    rs: &RuleSet<u32>,
    rules: &[(String, String)],
    events: &[&[u8]],
) -> Result<(usize, usize), String> {
    let patterns: Vec<Pattern> = rules
        .iter()
        .map(|(_, t)| Pattern::parse(t).unwrap())
        .collect();
    let mut total = 0;
    for (k, e) in events.iter().enumerate() {
        let ev = Event::from_bytes(e).map_err(|x| format!("event {k}: {x}"))?;
        let want: Vec<u32> = (0..patterns.len() as u32)
            .filter(|&i| patterns[i as usize].matches_event(&ev))
            .collect();
        let got = rs.matches(e).map_err(|x| format!("event {k}: {x}"))?;
        if got != want {
            return Err(format!("event {k}: RuleSet {got:?} != reference {want:?}"));
        }
        total += got.len();
    }
    Ok((events.len(), total))
}

/// FNV-1a of some byte strings, to key cached reference totals by exactly what they were computed on.
fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The reference interpreter's total number of (event, rule) matches over every event, on two
/// threads, cached in `cache` (`SET<TAB>FINGERPRINT<TAB>TOTAL` lines) because it costs rules × events.
fn reference_total(
    cache: &Path,
    set: &str,
    rules_text: &str,
    rules: &[(String, String)],
    events: &[&[u8]],
) -> usize {
    let mut parts: Vec<&[u8]> = vec![rules_text.as_bytes()];
    parts.extend(events.iter().copied());
    let key = fingerprint(&parts);
    let text = std::fs::read_to_string(cache).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() == 3
            && f[0] == set
            && f[1] == key
            && let Ok(n) = f[2].parse()
        {
            eprintln!(
                "  {set}: reference total {n} (cached in {})",
                cache.display()
            );
            return n;
        }
    }
    let t = Instant::now();
    let patterns: Vec<Pattern> = rules
        .iter()
        .map(|(_, t)| Pattern::parse(t).unwrap())
        .collect();
    let half = events.len() / 2;
    let count = |evs: &[&[u8]]| -> usize {
        evs.iter()
            .map(|e| {
                let ev = Event::from_bytes(e).unwrap_or_else(|x| die(&format!("reference: {x}")));
                patterns.iter().filter(|p| p.matches_event(&ev)).count()
            })
            .sum()
    };
    let total = std::thread::scope(|sc| {
        let a = sc.spawn(|| count(&events[..half]));
        let b = count(&events[half..]);
        a.join()
            .unwrap_or_else(|_| die("reference thread panicked"))
            + b
    });
    eprintln!(
        "  {set}: reference total {total} over {} events ({:.0} s), cached in {}",
        events.len(),
        t.elapsed().as_secs_f64(),
        cache.display()
    );
    let mut kept: Vec<&str> = text
        .lines()
        .filter(|l| l.split('\t').next() != Some(set))
        .collect();
    let line = format!("{set}\t{key}\t{total}");
    kept.push(&line);
    std::fs::write(cache, kept.join("\n") + "\n")
        .unwrap_or_else(|e| die(&format!("{}: {e}", cache.display())));
    total
}

fn expected(kit: &Path) -> HashMap<String, (usize, usize)> {
    let text = std::fs::read_to_string(kit.join("expected-matches.tsv"))
        .unwrap_or_else(|e| die(&format!("expected-matches.tsv: {e}")));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((
                f[0].to_string(),
                (f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?),
            ))
        })
        .collect()
}

fn set_names(kit: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(kit.join("expected-matches.tsv")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

/// `--profile DOOR`: `--passes` untimed passes (default 3) of one door over the events for each set,
/// nothing else, for `valgrind --tool=callgrind --toggle-collect=match::profiled_pass` (with
/// `--passes 1`) or `perf record -e cpu-clock`.
fn profile(a: &Args, door: &str, events: &[&[u8]]) {
    let sets = a.sets.clone().unwrap_or_else(|| set_names(&a.kit));
    for set in &sets {
        let rules = load_rules(&rules_file(a, set));
        let (rs, _, _) = compile(&rules);
        let q =
            (door == "quamina").then(|| quamina_for(&rules, true).unwrap_or_else(|e| die(&e)).0);
        let mut n = 0;
        for _ in 0..a.passes {
            n = profiled_pass(&rs, q.as_ref().map(|q| &q.q), door, events);
        }
        println!("{set} {door} {n} matches over {} events", events.len());
    }
}

/// A scratch with the classifier `BENCH_SIMD` names (the detected one by default).
fn bench_scratch() -> Scratch {
    let Ok(name) = std::env::var("BENCH_SIMD") else {
        return Scratch::new();
    };
    let simd = match name.as_str() {
        "avx512" => Simd::Avx512,
        "avx2" => Simd::Avx2,
        "sse2" => Simd::Sse2,
        "portable" => Simd::Portable,
        _ => {
            eprintln!("bench-match: BENCH_SIMD={name}: not one of avx512, avx2, sse2, portable");
            std::process::exit(2);
        }
    };
    Scratch::with_simd(simd).unwrap_or_else(|| {
        eprintln!("bench-match: BENCH_SIMD={name}: this CPU cannot run it");
        std::process::exit(2);
    })
}

#[inline(never)]
fn profiled_pass(
    rs: &RuleSet<u32>,
    q: Option<&quamina::Quamina<u32>>,
    door: &str,
    events: &[&[u8]],
) -> usize {
    let mut s = bench_scratch();
    let mut out = Vec::new();
    match (door, q) {
        ("prevalidated", _) => scanbridge_pass(rs, events, true, &mut s, &mut out),
        ("validating", _) => scanbridge_pass(rs, events, false, &mut s, &mut out),
        (_, Some(q)) => quamina_pass(q, events).unwrap_or_else(|e| die(&e)),
        _ => die("--profile prevalidated|validating|quamina"),
    }
}

fn main() {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut m) = PANIC_MSG.lock() {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            *m = format!(
                "{msg} at {}",
                info.location().map(|l| l.to_string()).unwrap_or_default()
            );
        }
    }));
    let a = args();
    if let Some(set) = &a.compile_only {
        let rules = load_rules(&rules_file(&a, set));
        let (rs, secs, heap) = compile(&rules);
        println!(
            "{set} rules={} compile_s={secs:.3} heap_peak_mb={:.1} vm_hwm_mb={:.1}",
            rs.len(),
            mb(heap),
            vm_hwm_mb()
        );
        return;
    }
    let data = std::fs::read(&a.events_file)
        .unwrap_or_else(|e| die(&format!("{}: {e}", a.events_file.display())));
    let events: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(a.count)
        .collect();
    if events.len() < a.count {
        die(&format!("only {} events in the file", events.len()));
    }
    if let Some(door) = &a.profile {
        profile(&a, door, &events);
        return;
    }
    let full = events.len() == FULL;
    let want = expected(&a.kit);
    let sets = a.sets.clone().unwrap_or_else(|| set_names(&a.kit));
    eprintln!(
        "bench-match: {} events, {} passes, counts checked against {}",
        events.len(),
        a.passes,
        if a.reference_totals.is_some() {
            "the reference interpreter's totals over every event"
        } else if full {
            "expected-matches.tsv (event-ruler)"
        } else {
            "the reference interpreter"
        }
    );
    let mut wrong = 0;
    let mut scratch = bench_scratch();
    let mut out = Vec::new();
    for set in &sets {
        let rules_path = rules_file(&a, set);
        let rules = load_rules(&rules_path);
        let (rs, secs, heap) = compile(&rules);
        let count = scanbridge_pass(&rs, &events, false, &mut scratch, &mut out);
        let fast_count = scanbridge_pass(&rs, &events, true, &mut scratch, &mut out);
        let mut note = Vec::new();
        if fast_count != count {
            wrong += 1;
            note.push(format!("WRONG: the prevalidated door counts {fast_count}"));
        }
        if let Some(cache) = &a.reference_totals {
            let text = std::fs::read_to_string(&rules_path).unwrap_or_default();
            let w = reference_total(cache, set, &text, &rules, &events);
            if w != count {
                wrong += 1;
                note.push(format!("WRONG COUNT: the reference interpreter counts {w}"));
            }
        } else if full {
            match want.get(set) {
                Some(&(_, w)) if w == count => {}
                Some(&(_, w)) => {
                    wrong += 1;
                    note.push(format!("WRONG COUNT: event-ruler counts {w}"));
                }
                None => note.push("no expected count".to_string()),
            }
        } else {
            // The reference interpreter costs rules × events; cap it for the large sets.
            let limit = (4_000_000 / rules.len().max(1)).clamp(20, events.len());
            match reference_check(&rs, &rules, &events[..limit]) {
                Ok((n, _)) => {
                    eprintln!("  {set}: {n} events agree with the reference event by event")
                }
                Err(e) => {
                    wrong += 1;
                    note.push(format!("WRONG: {e}"));
                }
            }
        }
        let q = if std::env::var_os("BENCH_NO_QUAMINA").is_some() {
            Err("skipped (BENCH_NO_QUAMINA)".to_string())
        } else {
            // Quamina runs the rules it accepts of the daemon's own sets (not of the kit's, where a
            // rejected rule means quamina cannot run the set).
            quamina_for(&rules, !want.contains_key(set))
        };
        let mut q_secs = 0.0;
        let mut q_ok = match q {
            Ok((q, s)) => {
                q_secs = s;
                if !q.note.is_empty() {
                    note.push(q.note.clone());
                }
                // Quamina's count is checked against ours on the same rules.
                let same = if q.accepted.len() == rules.len() {
                    count
                } else {
                    let subset: Vec<(String, String)> = q
                        .accepted
                        .iter()
                        .map(|&i| rules[i as usize].clone())
                        .collect();
                    scanbridge_pass(&compile(&subset).0, &events, false, &mut scratch, &mut out)
                };
                match quamina_pass(&q.q, &events) {
                    Ok(n) if n == same => Ok(q),
                    Ok(n) => {
                        note.push(format!(
                            "quamina counts {n} matches where scanbridge counts {same}"
                        ));
                        Ok(q)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let (mut sb_eps, mut fast_eps, mut q_eps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..a.passes {
            if std::env::var_os("BENCH_ONLY_PREVALIDATED").is_none() {
                let t = Clock::start(a.cpu_clock);
                std::hint::black_box(scanbridge_pass(&rs, &events, false, &mut scratch, &mut out));
                sb_eps.push(events.len() as f64 / t.seconds());
            }
            let t = Clock::start(a.cpu_clock);
            std::hint::black_box(scanbridge_pass(&rs, &events, true, &mut scratch, &mut out));
            fast_eps.push(events.len() as f64 / t.seconds());
            if let Ok(q) = &q_ok {
                let t = Clock::start(a.cpu_clock);
                match quamina_pass(&q.q, &events) {
                    Ok(n) => {
                        std::hint::black_box(n);
                        q_eps.push(events.len() as f64 / t.seconds());
                    }
                    Err(e) => q_ok = Err(e),
                }
            }
        }
        let best = a.best;
        let stat = |v: &[f64]| {
            if best {
                v.iter().copied().fold(0.0, f64::max)
            } else {
                v.iter().sum::<f64>() / v.len().max(1) as f64
            }
        };
        let sb = stat(&sb_eps);
        let fast = stat(&fast_eps);
        let (q_col, ratio) = match &q_ok {
            Ok(_) => {
                let q = stat(&q_eps);
                note.insert(0, format!("validating {sb:.0} eps, {:.2}x quamina", sb / q));
                (format!("{q:.0}"), format!("{:.2}", fast / q))
            }
            Err(e) => {
                note.insert(0, format!("validating {sb:.0} eps"));
                note.push(e.clone());
                ("-".to_string(), "-".to_string())
            }
        };
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" # {}", note.join("; "))
        };
        println!(
            "{set} {} {count} {fast:.0} {q_col} {ratio}{note}",
            rules.len()
        );
        eprintln!(
            "  {set}: scanbridge compiles {} rules in {:.1} ms (peak heap +{:.1} MB); quamina in {:.1} ms",
            rules.len(),
            secs * 1e3,
            mb(heap),
            q_secs * 1e3
        );
        drop(rs);
    }
    if wrong > 0 {
        eprintln!("bench-match: {wrong} set(s) with wrong counts");
        std::process::exit(1);
    }
}
