//! `eventpoll bench`: where select, poll, the kernel's epoll and eventpoll stand on this
//! machine.
//!
//! The main experiment is the pipetest of the 2002 epoll announcement ([`pipetest`],
//! [`experiment`]): many pipes, few active, tokens passed through them; it reports tokens per
//! second and cost per wait for each pipe count N, as a table, an SVG plot and JSON
//! ([`report`]). `eventpoll bench micro` measures single operations of the engine against the
//! kernel in the same run and prints ratios. `eventpoll bench contention` ([`contention`])
//! runs stress-epoll's scheme: producer threads signalling eventfds watched by one instance
//! while harvester threads drain them, events per millisecond by thread count, the kernel and
//! the engine alternating in the same run.
//!
//! The kernel side talks to the host through [`sys`] (the only module with `unsafe`, one FFI
//! call per block); the engine side goes through `eventpoll::FdTable`, the Linux-shaped layer.
//!
//! ```no_run
//! use eventpoll_bench::experiment::{run, Config, Silent};
//! let report = run(&Config::quick(), &mut Silent);
//! println!("{}", eventpoll_bench::report::text(&report));
//! ```

use clap::Parser as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub mod alloc;
pub mod contention;
pub mod engine;
pub mod experiment;
pub mod host;
pub mod kernel;
pub mod machine;
pub mod micro;
pub mod pipetest;
pub mod report;
pub mod sys;

use experiment::{Config, Method, Progress};

/// `eventpoll bench` arguments.
#[derive(clap::Args, Debug, Clone)]
#[command(
    about = "The pipetest scalability benchmark: select, poll, the kernel's epoll and eventpoll",
    long_about = "The pipetest of the 2002 epoll announcement: N pipes watched (10 to 100,000), \
                  K tokens in flight (a token is one byte in a pipe); each round waits for \
                  readiness, reads the ready pipes' tokens and writes each to another pipe \
                  chosen at random. Reports tokens per second and cost per wait for each N \
                  and method, a table, an SVG plot (tokens/s and cost per wait vs N) and \
                  optionally JSON. Refuses sizes whose pipes would not fit in memory.\n\n\
                  `eventpoll bench micro`: single operations against the kernel. \
                  `eventpoll bench contention`: producer threads signalling eventfds watched by \
                  one instance while harvester threads drain them (stress-epoll's scheme), e.g. \
                  `eventpoll bench contention --threads 1,2,4,8 --duration 0.5`."
)]
pub struct BenchArgs {
    /// `micro`: single operations, eventpoll vs the kernel.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// A short run for CI (N = 10, 1,000, 10,000; one pass, a budget of 7 s: about 8 s in
    /// all).
    #[arg(long)]
    pub quick: bool,
    /// Tokens in flight (K).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub tokens: u32,
    /// Pipe counts to run, comma-separated (default 10,100,1000,10000,100000).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Methods to run, comma-separated (select, poll, epoll-lt, epoll-et, eventpoll-lt,
    /// eventpoll-et, eventpoll-host-pipes [kernel-epoll driver],
    /// eventpoll-host-pipes-uring [io_uring driver]; default all).
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Time for all cells together, in seconds (default 50; 7 with --quick): cells whose
    /// set-up would not fit in the time left are not started.
    #[arg(long)]
    pub budget: Option<f64>,
    /// Seed of the pseudo-random token paths.
    #[arg(long, default_value_t = 0x5EED_2002)]
    pub seed: u64,
    /// Passes over all cells, each cell measured once per pass (methods interleaved), its
    /// median pass reported (default 3; 1 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub passes: Option<u32>,
    /// Write every number and the machine's description to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Where to write the plot (tokens/s and cost per wait vs N).
    #[arg(long, value_name = "FILE", default_value = "bench-pipetest.svg")]
    pub svg: PathBuf,
    /// Do not write the plot.
    #[arg(long)]
    pub no_svg: bool,
}

/// Subcommands of `eventpoll bench`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Single operations, eventpoll vs the kernel's epoll in the same run, as ratios:
    /// epoll_ctl ADD+DEL and MOD, waits with 1 and 100 ready (LT, ET), wait cost with 10
    /// ready among 100 to 1,000,000 watched, cross-thread wake round trip, bytes per watch.
    Micro(MicroArgs),
    /// Many threads signalling eventfds watched by one instance while others harvest them
    /// (stress-epoll's scheme): events per millisecond by producer thread count, the kernel's
    /// epoll and eventpoll alternating in the same run, with min–max of the passes.
    ///
    /// Example: `eventpoll bench contention --threads 1,2,4,8 --modes lt,et --duration 0.5`.
    Contention(ContentionArgs),
}

/// `eventpoll bench contention` arguments.
#[derive(clap::Args, Debug, Clone)]
#[command(
    long_about = "stress-epoll's scheme: P producer threads each write 1 to their share of E \
                  eventfds, in turn, for --duration seconds, while H harvester threads wait on \
                  the one epoll instance watching them all and read every reported eventfd \
                  (one-shot mode: then re-arm it with EPOLL_CTL_MOD). events/ms = signals \
                  harvested per millisecond, from the first write to the last harvest. The \
                  same workload runs on the kernel's epoll over real eventfds and on the \
                  eventpoll engine over its in-process eventfds, alternating within each pass; \
                  each cell reports its median pass with min–max, and the eventpoll ÷ kernel \
                  ratio with the range the spreads allow. A signal never harvested is a lost \
                  event and fails the cell. The default run (4 thread counts x 3 modes x 2 \
                  sides x 3 passes of 0.5 s) takes about 40 s.\n\n\
                  Example: eventpoll bench contention --threads 1,2,4,8 --modes lt,et \
                  --duration 0.5 --json contention.json"
)]
pub struct ContentionArgs {
    /// A short run (1 and 4 producers, LT and one-shot, 2 passes of 0.2 s: about 3 s).
    #[arg(long)]
    pub quick: bool,
    /// Producer thread counts, comma-separated (default 1,2,4,8).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<Vec<u16>>,
    /// Harvester threads waiting on the instance (default 1, as in stress-epoll).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub harvesters: Option<u16>,
    /// Eventfds watched by the instance, shared out among the producers (default 256).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub eventfds: Option<u32>,
    /// Seconds the producers write in each trial (default 0.5; 0.2 with --quick).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Passes over all cells (default 3; 2 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub passes: Option<u32>,
    /// Modes, comma-separated: lt, et, oneshot (default all).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(["lt", "et", "oneshot"]))]
    pub modes: Option<Vec<String>>,
    /// Write every pass of every cell and the machine's description to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Where to write the plot (events/ms against producer threads).
    #[arg(long, value_name = "FILE", default_value = "bench-contention.svg")]
    pub svg: PathBuf,
    /// Do not write the plot.
    #[arg(long)]
    pub no_svg: bool,
}

/// The contention configuration these arguments ask for.
pub fn contention_config(args: &ContentionArgs) -> Result<contention::Config, String> {
    let mut c = if args.quick {
        contention::Config::quick()
    } else {
        contention::Config::full()
    };
    if let Some(t) = &args.threads {
        let mut t: Vec<usize> = t.iter().map(|&x| x as usize).collect();
        if t.is_empty() {
            return Err("--threads: give at least one thread count".into());
        }
        t.sort_unstable();
        t.dedup();
        c.threads = t;
    }
    if let Some(h) = args.harvesters {
        c.harvesters = h as usize;
    }
    if let Some(e) = args.eventfds {
        c.eventfds = e as usize;
    }
    if let Some(d) = args.duration {
        if !(d.is_finite() && (0.001..=600.0).contains(&d)) {
            return Err("--duration: seconds between 0.001 and 600".into());
        }
        c.duration = Duration::from_secs_f64(d);
    }
    if let Some(p) = args.passes {
        c.passes = p as usize;
    }
    if let Some(names) = &args.modes {
        let mut ms = Vec::new();
        for m in contention::Mode::ALL {
            if names.iter().any(|n| n == m.key()) {
                ms.push(m);
            }
        }
        if ms.is_empty() {
            return Err("--modes: give at least one of lt, et, oneshot".into());
        }
        c.modes = ms;
    }
    Ok(c)
}

/// Check, before anything runs, that the `--svg` path (when a plot is wanted) and the
/// `--json` path can be written; the error names the flag, prefixed with `who`.
fn check_outputs(
    who: &str,
    svg: Option<&std::path::Path>,
    json: Option<&std::path::Path>,
) -> Result<(), ExitCode> {
    for (flag, path) in [("--svg", svg), ("--json", json)] {
        if let Some(path) = path {
            if let Err(e) = check_writable(path) {
                eprintln!("{who}: {flag}: {e}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(())
}

/// Run `eventpoll bench contention` and print the report.
pub fn run_contention(args: &ContentionArgs, quick: bool) -> ExitCode {
    let args = &ContentionArgs {
        quick: args.quick || quick,
        ..args.clone()
    };
    let config = match contention_config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eventpoll bench contention: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(code) = check_outputs(
        "eventpoll bench contention",
        (!args.no_svg).then_some(&*args.svg),
        args.json.as_deref(),
    ) {
        return code;
    }
    if let Err(e) = sys::raise_fd_limit() {
        eprintln!("eventpoll bench contention: could not raise the descriptor limit: {e}");
    }
    let (soft, _) = sys::fd_limit().unwrap_or((0, 0));
    if config.eventfds + sys::open_fd_count() + 16 > soft as usize {
        eprintln!(
            "eventpoll bench contention: --eventfds {} does not fit under the descriptor limit {soft}",
            config.eventfds
        );
        return ExitCode::from(2);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "eventpoll bench contention: {} trials, about {:.0} s; available parallelism {cores}",
        config.trials(),
        config.estimate().as_secs_f64()
    );
    let report = contention::run(&config, &mut Bar::new());
    print!("{}", contention::text(&report));
    let mut ok = true;
    if !args.no_svg {
        match contention::svg(&report, &args.svg) {
            Ok(()) => println!("plot: {}", args.svg.display()),
            Err(e) => {
                eprintln!("eventpoll bench contention: writing the plot: {e}");
                ok = false;
            }
        }
    }
    if let Some(path) = &args.json {
        ok &= write_json(path, &contention::json(&report));
    }
    let failed = report.cells.iter().any(|c| c.failure.is_some());
    if failed {
        eprintln!("eventpoll bench contention: some cells failed (see the table)");
    }
    if ok && !failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `eventpoll bench micro` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct MicroArgs {
    /// Shorter trials (the same figures).
    #[arg(long)]
    pub quick: bool,
    /// Write every figure and the machine's description to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Run only these figure groups, comma-separated: ctl, wait, flat, wake, bytes.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(micro::GROUPS))]
    pub only: Option<Vec<String>>,
}

/// The pipetest configuration these arguments ask for.
pub fn config(args: &BenchArgs) -> Result<Config, String> {
    let mut c = if args.quick {
        Config::quick()
    } else {
        Config::full()
    };
    c.tokens = args.tokens as usize;
    c.seed = args.seed;
    if let Some(sizes) = &args.sizes {
        if sizes.is_empty() || sizes.contains(&0) {
            return Err("--sizes: pipe counts must be positive".into());
        }
        let mut s = sizes.clone();
        s.sort_unstable();
        s.dedup();
        c.sizes = s;
    }
    if let Some(names) = &args.methods {
        let mut ms = Vec::new();
        for name in names {
            match Method::ALL.iter().find(|m| m.key() == name.as_str()) {
                Some(&m) => ms.push(m),
                None => return Err(format!("--methods: unknown method {name:?}")),
            }
        }
        c.methods = ms;
    }
    if let Some(b) = args.budget {
        if !(b.is_finite() && b > 0.0 && b < 86_400.0) {
            return Err("--budget: seconds must be positive".into());
        }
        c.budget = Duration::from_secs_f64(b);
    }
    if let Some(p) = args.passes {
        c.passes = p as usize;
    }
    Ok(c)
}

/// Memory the system can give without swapping (`MemAvailable`), in bytes.
pub fn memory_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuse a configuration whose largest cell would need more memory than `available`
/// (see [`experiment::memory_estimate`]).
pub fn check_memory(config: &Config, kernel_max: usize, available: u64) -> Result<(), String> {
    let (need, method, n) = experiment::memory_estimate(config, kernel_max);
    if need <= available {
        return Ok(());
    }
    let gb = |b: u64| b as f64 / 1e9;
    Err(format!(
        "--sizes: {} at N = {} would need about {:.1} GB ({} bytes per pipe, plus a quarter \
         and 64 MB), but this machine has {:.1} GB available (MemAvailable); give smaller \
         --sizes",
        method.label(),
        experiment::fmt_count(n as f64),
        gb(need),
        method.bytes_per_pipe(),
        gb(available)
    ))
}

/// Whether `path` can be written (checked before a run, so that a bad path fails at once,
/// not after minutes of measuring): an existing file must open for writing (it is not
/// changed), a new one's directory must accept a file (a probe, removed at once).
pub fn check_writable(path: &std::path::Path) -> Result<(), String> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!("{shown}: is a directory"));
    }
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| format!("{shown}: {e}"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("{shown}: no directory {}", dir.display()));
    }
    let probe = dir.join(format!(
        ".eventpoll-bench-write-check-{}",
        std::process::id()
    ));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("{shown}: cannot write in {}: {e}", dir.display())),
    }
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn with_template(template: &str) -> Bar {
        let pb = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            pb.set_style(style.progress_chars("=> "));
        }
        Bar(pb)
    }
    fn new() -> Bar {
        Bar::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
    }
    fn spinner() -> Bar {
        let bar = Bar::with_template("{elapsed:>4} {spinner} {msg}");
        bar.0.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

impl Progress for Bar {
    fn start(&mut self, label: &str, done: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        self.0.set_message(label.to_string());
    }
    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> bool {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    match std::fs::write(path, text + "\n") {
        Ok(()) => {
            println!("json: {}", path.display());
            true
        }
        Err(e) => {
            eprintln!("eventpoll bench: writing {}: {e}", path.display());
            false
        }
    }
}

/// Run `eventpoll bench micro` and print the report.
pub fn run_micro(args: &MicroArgs, quick: bool) -> ExitCode {
    if let Err(e) = sys::raise_fd_limit() {
        eprintln!("eventpoll bench: could not raise the descriptor limit: {e}");
    }
    let mut config = if args.quick || quick {
        micro::MicroConfig::quick()
    } else {
        micro::MicroConfig::full()
    };
    if let Some(only) = &args.only {
        config.groups = only.clone();
    }
    let bar = Bar::spinner();
    let report = micro::run(&config, &mut |label| bar.0.set_message(label.to_string()));
    bar.0.finish_and_clear();
    print!("{}", micro::text(&report));
    let ok = args
        .json
        .as_ref()
        .is_none_or(|p| write_json(p, &micro::json(&report)));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Run `eventpoll bench` (the pipetest, or `micro`) and print the report.
pub fn run(args: BenchArgs) -> ExitCode {
    match &args.command {
        Some(BenchCommand::Micro(m)) => return run_micro(m, args.quick),
        Some(BenchCommand::Contention(c)) => return run_contention(c, args.quick),
        None => {}
    }
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eventpoll bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(code) = check_outputs(
        "eventpoll bench",
        (!args.no_svg).then_some(&*args.svg),
        args.json.as_deref(),
    ) {
        return code;
    }
    if let Err(e) = sys::raise_fd_limit() {
        eprintln!("eventpoll bench: could not raise the descriptor limit: {e}");
    }
    let (kernel_max, _) = experiment::kernel_limits(
        machine::Machine::describe().fd_limit.0,
        sys::open_fd_count(),
    );
    if let Some(available) = memory_available() {
        if let Err(e) = check_memory(&config, kernel_max, available) {
            eprintln!("eventpoll bench: {e}");
            return ExitCode::from(2);
        }
    }
    let report = experiment::run(&config, &mut Bar::new());
    print!("{}", report::text(&report));
    let mut ok = true;
    if !args.no_svg {
        match report::svg(&report, &args.svg) {
            Ok(()) => println!("plot: {}", args.svg.display()),
            Err(e) => {
                eprintln!("eventpoll bench: writing the plot: {e}");
                ok = false;
            }
        }
    }
    if let Some(path) = &args.json {
        ok &= write_json(path, &report::json(&report));
    }
    let failed = report.cells.iter().any(|c| c.outcome.status() == "failed");
    if failed {
        eprintln!("eventpoll bench: some cells failed (see the table)");
    }
    if ok && !failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Parse `eventpoll bench` arguments from a list (for tests and embedding).
pub fn parse_args<I, T>(args: I) -> Result<BenchArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BenchArgs,
    }
    Wrapper::try_parse_from(args).map(|w| w.args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_make_configs() {
        let a = parse_args(["bench", "--quick"]).unwrap();
        let c = config(&a).unwrap();
        assert_eq!(c.sizes, vec![10, 1_000, 10_000]);
        assert_eq!(c.tokens, 16);
        let a = parse_args([
            "bench",
            "--sizes",
            "100,10",
            "--methods",
            "poll,epoll-et",
            "--budget",
            "2",
        ])
        .unwrap();
        let c = config(&a).unwrap();
        assert_eq!(c.sizes, vec![10, 100]);
        assert_eq!(c.methods, vec![Method::Poll, Method::EpollEt]);
        assert_eq!(c.budget, Duration::from_secs(2));
        let a = parse_args(["bench", "--methods", "kqueue"]).unwrap();
        assert!(config(&a).is_err());
        let a = parse_args(["bench", "--sizes", "0"]).unwrap();
        assert!(config(&a).is_err());
        // 100,000,000 in-process pipes: about 47 GB plus margins.
        let a = parse_args(["bench", "--sizes", "100000000"]).unwrap();
        let c = config(&a).unwrap();
        let (need, method, n) = experiment::memory_estimate(&c, 9_990);
        assert_eq!((method, n), (Method::EngineLt, 100_000_000));
        assert_eq!(need, 47_200_000_000 + 47_200_000_000 / 4 + (64 << 20));
        let e = check_memory(&c, 9_990, 8_000_000_000).unwrap_err();
        assert!(
            e.contains("about 59.1 GB") && e.contains("8.0 GB available"),
            "{e}"
        );
        assert!(check_memory(&Config::full(), 9_990, 8_000_000_000).is_ok());
        assert!(parse_args(["bench", "--tokens", "0"]).is_err());
        let a = parse_args(["bench", "micro", "--quick", "--json", "m.json"]).unwrap();
        match a.command {
            Some(BenchCommand::Micro(m)) => {
                assert!(m.quick);
                assert_eq!(m.json, Some(PathBuf::from("m.json")));
            }
            _ => panic!("micro not parsed"),
        }
        let a = parse_args([
            "bench",
            "contention",
            "--threads",
            "8,1,2,2",
            "--modes",
            "oneshot,lt",
            "--duration",
            "0.25",
            "--eventfds",
            "16",
        ])
        .unwrap();
        let Some(BenchCommand::Contention(c)) = a.command else {
            panic!("contention not parsed")
        };
        let cfg = contention_config(&c).unwrap();
        assert_eq!(cfg.threads, vec![1, 2, 8]);
        assert_eq!(
            cfg.modes,
            vec![contention::Mode::Level, contention::Mode::OneShot]
        );
        assert_eq!(cfg.duration, Duration::from_millis(250));
        assert_eq!((cfg.eventfds, cfg.harvesters, cfg.passes), (16, 1, 3));
        assert_eq!(cfg.trials(), 3 * 2 * 2 * 3);
        let full = contention::Config::full();
        assert!(
            full.estimate() <= Duration::from_secs(60),
            "{:?}",
            full.estimate()
        );
        assert!(parse_args(["bench", "contention", "--threads", "0"]).is_err());
        assert!(parse_args(["bench", "contention", "--modes", "kqueue"]).is_err());
        let a = parse_args(["bench", "contention", "--duration", "0"]).unwrap();
        let Some(BenchCommand::Contention(c)) = a.command else {
            panic!("contention not parsed")
        };
        assert!(contention_config(&c).is_err());
    }
}
