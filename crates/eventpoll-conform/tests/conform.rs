//! Integration tests of the conformance runner: parse errors, the kernel oracle against the
//! transcripts recorded (and reviewed) in `tests/examples/*.kernel` and `probes/*.kernel`,
//! the kernel's determinism on random scenarios, and the comparison of every backend with
//! the kernel on the whole corpus and on 2,000 random scenarios.

mod sim;

use eventpoll_conform::{backend, compare, exec, random, run, script, ConformArgs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kernel() -> &'static backend::BackendKind {
    backend::by_name("kernel").expect("kernel backend")
}

#[test]
fn parse_errors_name_file_and_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("epoll e\nfrobnicate x\n", 2, "unknown command `frobnicate`"),
        ("pipe r W\n", 1, "bad name `W`"),
        (
            "epoll e\n\n# comment\nclose x\n",
            4,
            "`x` was never created",
        ),
        ("dup fd:1 9lives\n", 1, "bad name `9lives`"),
        ("eventfd c nope\n", 1, "bad number `nope`"),
        ("pipe r w\nwrite w 0x\n", 2, "bad number `0x`"),
        (
            "epoll e\nwait e 8 99999999999\n",
            2,
            "bad number `99999999999`",
        ),
        ("close fd:x\n", 1, "bad number `x`"),
        ("epoll e\nwait e 8\n", 2, "missing argument"),
        ("epoll e\nctl e add e in\n", 2, "missing argument"),
        ("epoll e\nctl e add e\n", 2, "missing argument"),
        ("pipe r w extra\n", 1, "extra argument `extra`"),
        ("epoll e\nwait e 8 0 0\n", 2, "extra argument `0`"),
        ("epoll e\nctl e frob e in 1\n", 2, "bad word `frob`"),
        ("epoll e\nctl e add e in|nope 1\n", 2, "bad word `nope`"),
        ("socketpair a b raw\n", 1, "bad word `raw`"),
    ];
    for (src, line, needle) in cases {
        let err = script::parse("dir/case.ep", src).expect_err(src);
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("dir/case.ep:{line}: ")),
            "{src:?} gave {msg:?}"
        );
        assert!(msg.contains(needle), "{src:?} gave {msg:?}");
    }
}

#[test]
fn cli_exit_statuses() {
    let dir = std::env::temp_dir().join(format!("eventpoll-conform-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/bad.ep"), "epoll e\nbogus\n").unwrap();
    let args = |paths: Vec<PathBuf>| ConformArgs {
        paths,
        ..ConformArgs::default()
    };
    // A parse error anywhere under a directory: status 2.
    assert_eq!(run(args(vec![dir.clone()])), ExitCode::from(2));
    // No paths, a missing path, an unknown backend: status 2.
    assert_eq!(run(args(vec![])), ExitCode::from(2));
    assert_eq!(run(args(vec![dir.join("missing.ep")])), ExitCode::from(2));
    std::fs::write(dir.join("sub/bad.ep"), "epoll e\nwait e 1 0\n").unwrap();
    let unknown = ConformArgs {
        backend: Some("nonesuch".into()),
        ..args(vec![dir.clone()])
    };
    assert_eq!(run(unknown), ExitCode::from(2));
    // One backend's transcript of a valid scenario: status 0.
    let kernel_only = ConformArgs {
        backend: Some("kernel".into()),
        ..args(vec![dir.clone()])
    };
    assert_eq!(run(kernel_only), ExitCode::SUCCESS);
    // Only `.ep` files are collected from directories, sorted.
    std::fs::write(dir.join("sub/notes.txt"), "not a scenario").unwrap();
    std::fs::write(dir.join("a.ep"), "epoll e\n").unwrap();
    let files = eventpoll_conform::collect_files(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(files, [dir.join("a.ep"), dir.join("sub/bad.ep")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every `X.ep` in `dir` with its recorded kernel transcript `X.kernel`.
fn recorded(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for f in eventpoll_conform::collect_files(&[dir.to_path_buf()]).unwrap() {
        let expected = std::fs::read_to_string(f.with_extension("kernel"))
            .unwrap_or_else(|e| panic!("{}: no recorded transcript: {e}", f.display()));
        out.push((f, expected));
    }
    out
}

#[test]
fn kernel_reproduces_recorded_transcripts() {
    let examples = recorded(&crate_dir().join("tests/examples"));
    let probes = recorded(&crate_dir().join("probes"));
    assert_eq!(examples.len(), 6, "the six examples of the format page");
    assert!(probes.len() >= 6, "probes (a) to (f)");
    for (path, expected) in examples.iter().chain(&probes) {
        let src = std::fs::read_to_string(path).unwrap();
        let s = script::parse(&path.display().to_string(), &src).unwrap();
        let t = exec::run_script(&s, kernel());
        assert_eq!(t.panic, None);
        assert_eq!(t.text(), *expected, "{}", path.display());
    }
}

#[test]
fn kernel_spot_checks() {
    // A few facts asserted directly, so that a wrong recording cannot hide them.
    let run = |src: &str| {
        let s = script::parse("spot.ep", src).unwrap();
        exec::run_script(&s, kernel()).lines
    };
    let t = run(
        "epoll e\npipe r w\nctl e add r in|rdnorm 7\nctl e add w out 9\nwrite w 1\nwait e 8 0\n",
    );
    // Ready-list order: the write end became ready at ADD, the read end at the write.
    assert_eq!(t[5], "wait e 8 0 => 2 [9 out, 7 in|rdnorm]");
    // Numbers are reused lowest-first after close, as in the engine's table.
    let t = run("pipe r w\nclose r\neventfd c 0\nclose fd:0\npoll c\npoll w\n");
    assert_eq!(t[3], "close fd:0 => ok");
    assert_eq!(t[4], "poll c => nval");
    assert_eq!(t[5], "poll w => out|err|wrnorm");
    // dup2 onto a name's number; closed names give EBADF.
    let t = run("pipe r w\neventfd c 5\ndup2 c r\nefd-read r\nclose c\nefd-read c\n");
    assert_eq!(t[3], "efd-read r => 5");
    assert_eq!(t[5], "efd-read c => EBADF");
    // A timer set to an expired time is readable at once (timerfd reports IN without RDNORM).
    let t = run("timerfd t\nsettime t expired\npoll t\nread t 8\nsettime t disarm\npoll t\n");
    assert_eq!(t[2], "poll t => in");
    assert_eq!(t[3], "read t 8 => 8");
    assert_eq!(t[5], "poll t => 0");
    // A regular file is not pollable by epoll.
    let t = run("epoll e\nfile f\nctl e add f in 1\npoll f\n");
    assert_eq!(t[2], "ctl e add f in 1 => EPERM");
    assert_eq!(t[3], "poll f => in|out|rdnorm|wrnorm");
}

#[test]
fn kernel_is_deterministic_on_random_scenarios() {
    for i in 0..300 {
        let text = random::generate(99, i);
        let s = script::parse("det.ep", &text).unwrap();
        let a = exec::run_script(&s, kernel());
        let b = exec::run_script(&s, kernel());
        assert_eq!(a.panic, None, "{text}");
        assert_eq!(
            a, b,
            "kernel transcripts differ between two runs of\n{text}"
        );
    }
}

#[test]
fn corpus_matches_kernel_on_every_backend() {
    let mut paths = vec![
        crate_dir().join("tests/examples"),
        crate_dir().join("probes"),
    ];
    let corpus = crate_dir().join("../../scenarios");
    if corpus.is_dir() {
        paths.push(corpus);
    }
    let scripts = eventpoll_conform::load(&paths).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(scripts.len() >= 12);
    let mut report = String::new();
    let mut failed = 0;
    let mut kernel_only = 0;
    for s in &scripts {
        let o = compare::compare(s, backend::ALL);
        if o.uncompared() && s.needs_inet() && o.oracle.1.panic.is_none() {
            // TCP/UDP without the C ABI backend: only the kernel ran it (the engine, and the
            // sim backend that runs it, have no inet sockets);
            // `inet_and_socket_corpus_through_the_c_abi_matches_kernel` compares these with
            // the C ABI.
            assert_eq!(o.skipped, ["engine", "sim"], "{}", s.name);
            kernel_only += 1;
            continue;
        }
        if !o.passed() {
            failed += 1;
            report.push_str(&format!("FAIL {}\n{}", s.name, o.diffs()));
        }
    }
    assert_eq!(
        failed,
        0,
        "{failed} of {} scenarios differ:\n{report}",
        scripts.len()
    );
    eprintln!(
        "corpus: {} scenarios, {kernel_only} of them TCP/UDP (kernel only here: compared \
         with the C ABI by inet_and_socket_corpus_through_the_c_abi_matches_kernel)",
        scripts.len()
    );
}

/// `n` random scenarios of `seed` (threaded ones with `threaded`) agree on every backend;
/// otherwise the shrunk failures are shown.
fn random_run_matches_kernel(n: u64, seed: u64, threaded: bool) {
    let report = random::check(n, seed, threaded, |_, _| {});
    let shown: String = report
        .failures
        .iter()
        .map(|f| format!("#{}:\n{}{}\n", f.index, f.script, f.diff))
        .collect();
    assert_eq!(
        report.failed, 0,
        "{} of {n} random scenarios (threaded: {threaded}) differ; shrunk:\n{shown}",
        report.failed
    );
    assert_eq!(report.passed, n);
}

#[test]
fn random_scenarios_match_kernel() {
    random_run_matches_kernel(2000, 20_251_121, false);
}

#[test]
fn a_scenario_that_never_ends_is_stopped_and_fails() {
    let hang = script::parse("hang.ep", "epoll e\nwait e 8 -1\neventfd c 1\n").unwrap();
    let limit = std::time::Duration::from_millis(300);
    let start = std::time::Instant::now();
    let o = compare::compare_within(&hang, backend::ALL, limit);
    // Two backends, each stopped after the limit, plus the interrupt's round trip.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(!o.passed());
    assert_eq!(&o.failing()[..2], ["kernel", "engine"]);
    assert_eq!(o.abandoned(), None);
    // The sim backend sees at once that nothing can ever wake its only task, and says so.
    let (_, sim) = o.others.iter().find(|(n, _)| *n == "sim").expect("sim ran");
    assert!(o.failing().contains(&"sim"));
    assert_eq!(sim.timeout, None);
    assert!(
        sim.lines[1].starts_with("wait e 8 -1 => panic: sim: every simulated task is asleep"),
        "{:?}",
        sim.lines
    );
    for t in std::iter::once(&o.oracle.1)
        .chain(o.others.iter().filter(|(n, _)| *n != "sim").map(|(_, t)| t))
    {
        let to = t.timeout.expect("timed out");
        assert_eq!((to.line, to.abandoned), (1, false));
        assert_eq!(t.lines[0], "epoll e => ok");
        assert_eq!(
            t.lines[1],
            "wait e 8 -1 => timeout: no result within 0.3 s (the time limit, --timeout)"
        );
        assert_eq!(t.lines.len(), 2);
    }
    assert!(
        o.diffs()
            .contains("kernel: hang.ep: wait e 8 -1 => timeout"),
        "{}",
        o.diffs()
    );
    // The same workers run the next scenario normally.
    let fine = script::parse(
        "fine.ep",
        "epoll e\neventfd c 1\nctl e add c in 5\nwait e 8 -1\n",
    )
    .unwrap();
    let o = compare::compare_within(&fine, backend::ALL, limit);
    assert!(o.passed(), "{}", o.diffs());
    assert_eq!(o.oracle.1.lines[3], "wait e 8 -1 => 1 [5 in]");
}

#[test]
fn threaded_random_scenarios_match_kernel() {
    random_run_matches_kernel(150, 20_261_205, true);
}

/// `libeventpoll.so` of this target directory and profile, built once (`cargo test` does
/// not build the cdylib for other crates' tests).
fn capi_library() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    BUILD.call_once(|| {
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "eventpoll-capi", "--target-dir"])
            .arg(dir.parent().unwrap());
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for libeventpoll");
        assert!(status.success(), "cargo build -p eventpoll-capi failed");
    });
    dir.join("libeventpoll.so")
}

/// The path suffixes of `scripts/capi-known.txt`: scenarios whose C ABI transcript is a
/// documented deviation; with the kernel-epoll driver (the library's default, or
/// `EVENTPOLL_DRIVER=epoll`) also those of `scripts/capi-known-epoll.txt`, as
/// `scripts/capi-conform.sh` reads them.
fn capi_known() -> Vec<String> {
    let driver = std::env::var("EVENTPOLL_DRIVER").unwrap_or_default();
    let mut lists = vec!["capi-known.txt"];
    if !matches!(driver.as_str(), "uring" | "poll") {
        lists.push("capi-known-epoll.txt");
    }
    let mut known = Vec::new();
    for list in lists {
        let text = std::fs::read_to_string(crate_dir().join("../../scripts").join(list))
            .unwrap_or_else(|e| panic!("scripts/{list}: {e}"));
        known.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    known
}

#[test]
fn threaded_corpus_through_the_c_abi_matches_kernel() {
    corpus_through_the_c_abi_matches_kernel("threads", 60);
}

/// The socket corpus (unix pairs and listeners, TCP and UDP on loopback) through the C ABI:
/// the only comparison the TCP and UDP scenarios get, the engine having no inet sockets.
#[test]
fn inet_and_socket_corpus_through_the_c_abi_matches_kernel() {
    corpus_through_the_c_abi_matches_kernel("socket", 50);
}

/// Every scenario under `scenarios/DIR` (at least `min`) through the C ABI backend matches
/// the kernel, or is a known deviation (`scripts/capi-known.txt`).
fn corpus_through_the_c_abi_matches_kernel(dir: &str, min: usize) {
    let corpus = crate_dir().join("../../scenarios").join(dir);
    if !corpus.is_dir() {
        return;
    }
    let lib = capi_library();
    assert!(lib.is_file(), "{} not built", lib.display());
    // The capi backend finds it next to this test binary's directory (target/<profile>/).
    let known = capi_known();
    let files = eventpoll_conform::collect_files(&[corpus]).unwrap();
    assert!(
        files.len() >= min,
        "{dir} corpus: {} scenarios",
        files.len()
    );
    let kinds = [
        *backend::by_name("kernel").unwrap(),
        *backend::by_name("capi").unwrap(),
    ];
    let mut failed = Vec::new();
    let mut known_seen = 0;
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        let shown = f.display().to_string();
        let s = script::parse(&shown, &src).unwrap();
        // Exactly these two: `compare` would leave capi out without EVENTPOLL_CONFORM_CAPI
        // (and then compare nothing).
        let o = compare::compare_exactly(&s, &kinds);
        assert_eq!(o.others.len(), 1, "{shown}: capi did not run");
        if o.passed() {
            continue;
        }
        if known.iter().any(|k| shown.ends_with(k.as_str())) {
            known_seen += 1;
        } else {
            failed.push(format!("FAIL {shown}\n{}", o.diffs()));
        }
    }
    eprintln!(
        "{dir} corpus through the C ABI: {} scenarios, {known_seen} known deviations \
         (scripts/capi-known*.txt), {} unexpected",
        files.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
