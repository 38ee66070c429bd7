//! The `eventpoll` binary on bad input, as a first-time user meets it: each case checks the
//! message and the exit status (2: usage, 1: a scenario failed), and that nothing panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn eventpoll() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eventpoll"));
    c.env_remove("EVENTPOLL_CONFORM_CAPI")
        .env_remove("EVENTPOLL_LIB");
    c
}

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("eventpoll-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> (String, String) {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(!err.contains("panicked"), "a panic: {err}");
    (out, err)
}

fn status(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn conform_on_an_empty_or_mistyped_directory_fails() {
    let d = scratch("empty");
    write(&d, "notes.txt", "no scenarios here");
    let o = eventpoll().arg("conform").arg(&d).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(status(&o), 2);
    assert!(err.contains("no scenarios found in"), "{err}");
    let o = eventpoll()
        .arg("conform")
        .arg(d.join("scenaros"))
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(status(&o), 2);
    assert!(err.contains("scenaros: no such file or directory"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_scenario_that_hangs_is_a_failure_after_the_time_limit() {
    let d = scratch("hang");
    let f = write(&d, "hang.ep", "epoll e\nwait e 8 -1\n");
    let start = Instant::now();
    let o = eventpoll()
        .args(["conform", "--timeout", "0.3"])
        .arg(&f)
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(status(&o), 1, "{out}");
    assert!(out.contains("FAIL hang.ep"), "{out}");
    assert!(
        out.contains("kernel: ") && out.contains("wait e 8 -1 => timeout: no result within 0.3 s"),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed"), "{out}");
    // One backend's transcript is bounded the same way.
    let o = eventpoll()
        .args(["conform", "--timeout", "0.3", "--backend", "engine"])
        .arg(&f)
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert_eq!(status(&o), 1);
    assert_eq!(
        out,
        "epoll e => ok\nwait e 8 -1 => timeout: no result within 0.3 s (the time limit, --timeout)\n"
    );
    let o = eventpoll()
        .args(["conform", "--timeout", "0"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(status(&o), 2);
    assert!(text(&o).1.contains("--timeout: seconds must be positive"));
    std::fs::remove_dir_all(&d).unwrap();
}

/// The binary alone in a directory: no libeventpoll.so next to it (as after `cargo install`).
fn lonely_binary(d: &Path) -> PathBuf {
    let exe = d.join("bin/eventpoll");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_eventpoll"), &exe).unwrap();
    exe
}

#[test]
fn the_capi_backend_without_its_library_is_a_clear_error() {
    let d = scratch("capi");
    let f = write(&d, "one.ep", "epoll e\nwait e 8 0\n");
    let exe = lonely_binary(&d);
    let o = Command::new(&exe)
        .args(["conform", "--backend", "capi"])
        .arg(&f)
        .env_remove("EVENTPOLL_LIB")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(status(&o), 2, "{err}");
    assert!(
        err.contains("the capi backend needs libeventpoll.so, which was not found")
            && err.contains("EVENTPOLL_LIB (not set)")
            && err.contains("set EVENTPOLL_LIB="),
        "{err}"
    );
    // Asked for in comparisons: an error, not a silent skip.
    let o = Command::new(&exe)
        .arg("conform")
        .arg(&f)
        .env("EVENTPOLL_CONFORM_CAPI", "1")
        .env("EVENTPOLL_LIB", d.join("nope/libeventpoll.so"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(status(&o), 2, "{out}{err}");
    assert!(
        err.contains("EVENTPOLL_CONFORM_CAPI is set, but the capi backend needs libeventpoll.so")
            && err.contains("nope/libeventpoll.so (no such file)"),
        "{err}"
    );
    assert!(!out.contains("passed"), "{out}");
    // Not asked for: the notice says how to include it, and nothing about known mismatches.
    let o = Command::new(&exe).arg("conform").arg(&f).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(status(&o), 0, "{out}{err}");
    assert!(
        err.contains("comparing engine, sim with the kernel; the C ABI backend (capi) is compared too with EVENTPOLL_CONFORM_CAPI=1"),
        "{err}"
    );
    assert!(
        !err.contains("mismatch") && !err.contains("not compared by default yet"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn conform_help_lists_every_backend_and_the_time_limit() {
    let o = eventpoll().args(["conform", "--help"]).output().unwrap();
    let (out, _) = text(&o);
    assert_eq!(status(&o), 0);
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("`kernel`, `engine`, `sim`: the engine on the deterministic platform")
            && flat.contains("or `capi`: libeventpoll.so"),
        "{out}"
    );
    assert!(
        flat.contains("--timeout <SECS>") && flat.contains("[default: 10]"),
        "{out}"
    );
}

#[test]
fn scenario_parse_errors_say_what_is_allowed() {
    let d = scratch("parse");
    let cases = [
        ("word.ep", "epoll e\npipe r w\nctl e add r in|bogus 1\n", "word.ep:3: bad word `bogus`: expected event names (in pri out"),
        ("name.ep", "epoll e\nctl e add zz in 1\n", "name.ep:2: `zz` was never created"),
        ("number.ep", "pipe r w\nwrite w 16777217\n", "number.ep:2: bad number `16777217`: read and write counts are at most 16777216 (16 MiB)"),
    ];
    for (name, body, needle) in cases {
        let f = write(&d, name, body);
        let o = eventpoll().arg("conform").arg(&f).output().unwrap();
        let (_, err) = text(&o);
        assert_eq!(status(&o), 2, "{err}");
        assert!(err.contains(needle), "{name}: {err}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn save_is_checked_first_and_created_only_when_needed() {
    let d = scratch("save");
    let target = d.join("new/dir");
    let o = eventpoll()
        .args(["conform", "--random", "3", "--seed", "7", "--save"])
        .arg(&target)
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert_eq!(status(&o), 0, "{out}");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
    assert!(
        !d.join("new").exists(),
        "--save created a directory with nothing to save"
    );
    // A place where nothing can be written: refused before running.
    let o = eventpoll()
        .args([
            "conform",
            "--random",
            "100000000",
            "--save",
            "/proc/eventpoll-saves",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(status(&o), 2);
    assert!(err.contains("--save: /proc: cannot write there"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bench_refuses_sizes_that_do_not_fit_in_memory() {
    let start = Instant::now();
    let o = eventpoll()
        .args(["bench", "--sizes", "100000000", "--budget", "3", "--no-svg"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(status(&o), 2, "{out}{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        err.contains("at N = 100,000,000 would need about 59.1 GB (472 bytes per pipe")
            && err.contains("GB available (MemAvailable); give smaller --sizes"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[test]
fn bench_checks_its_output_paths_before_running() {
    let start = Instant::now();
    for (flag, path) in [
        ("--json", "/proc/eventpoll/out.json"),
        ("--svg", "/nonexistent-dir/plot.svg"),
    ] {
        let o = eventpoll()
            .args(["bench", "--quick", flag, path])
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert_eq!(status(&o), 2, "{out}{err}");
        assert!(
            err.starts_with(&format!("eventpoll bench: {flag}: {path}")),
            "{err}"
        );
        assert!(out.is_empty(), "ran anyway: {out}");
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn bench_help_lists_every_method() {
    let o = eventpoll().args(["bench", "--help"]).output().unwrap();
    let (out, _) = text(&o);
    for key in [
        "select",
        "poll",
        "epoll-lt",
        "epoll-et",
        "eventpoll-lt",
        "eventpoll-et",
        "eventpoll-host-pipes ",
        "eventpoll-host-pipes-uring",
    ] {
        assert!(out.contains(key), "{key} missing: {out}");
    }
}

#[test]
fn a_small_bench_explains_itself_and_keeps_to_its_budget() {
    let d = scratch("bench");
    let json = d.join("b.json");
    let svg = d.join("b.svg");
    let start = Instant::now();
    let o = eventpoll()
        .args([
            "bench",
            "--sizes",
            "10,100",
            "--methods",
            "epoll-lt,eventpoll-lt,eventpoll-host-pipes-uring",
            "--budget",
            "0.6",
            "--passes",
            "1",
            "--json",
        ])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let took = start.elapsed();
    let (out, err) = text(&o);
    assert_eq!(status(&o), 0, "{out}{err}");
    assert!(took < Duration::from_secs(4), "{took:?} for a 0.6 s budget");
    for needle in [
        "A round is one wait for",
        "tokens/s = tokens passed on per second (higher is better)",
        "spread = the",
        "eventpoll LT (host pipes, io_uring driver)",
        "project target (tokens/s ratio)",
        "(budget 0.6 s)",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.contains("cost per wait (lower is better)"));
    let j = std::fs::read_to_string(&json).unwrap();
    assert!(j.contains("\"tokens_per_sec_ratio_range\""), "{j}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `libeventpoll.so` next to the `eventpoll` binary (built once, same target and profile).
fn built_library() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let dir = Path::new(env!("CARGO_BIN_EXE_eventpoll"))
        .parent()
        .unwrap()
        .to_path_buf();
    BUILD.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "eventpoll-capi", "--target-dir"])
            .arg(dir.parent().unwrap());
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "cargo build -p eventpoll-capi"
        );
    });
    dir.join("libeventpoll.so")
}

/// `eventpoll check -- PROGRAM` on each checker program of the C ABI's tests: the finding
/// lines on standard error, the table with the kind, its count and first occurrence, the
/// program's own exit status, or `--error-exitcode` when there were findings.
#[test]
fn check_names_each_pitfall_and_passes_correct_programs() {
    if Command::new("cc").arg("--version").output().is_err() {
        eprintln!("skipped: no cc");
        return;
    }
    built_library();
    let d = scratch("check");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eventpoll-capi/tests/c/check");
    let cases = [
        ("ghost_item", &["ghost-item"][..]),
        ("ghost_event", &["ghost-item", "ghost-event"][..]),
        ("ghost_item_received", &["ghost-item", "ghost-event"][..]),
        ("undrained_edge", &["undrained-edge"][..]),
        ("oneshot_unarmed", &["oneshot-unarmed"][..]),
        ("herd", &["herd"][..]),
        ("et_blocking_fd", &["et-blocking-fd"][..]),
        ("ok_et_drain", &[][..]),
        ("ok_oneshot_rearm", &[][..]),
        ("ok_exclusive", &[][..]),
        ("ok_dup_del_close", &[][..]),
    ];
    let all = [
        "ghost-item",
        "ghost-event",
        "undrained-edge",
        "oneshot-unarmed",
        "herd",
        "et-blocking-fd",
    ];
    for (name, kinds) in cases {
        let exe = d.join(name);
        let o = Command::new("cc")
            .args(["-O1", "-pthread", "-o"])
            .arg(&exe)
            .arg(src.join(format!("{name}.c")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = eventpoll()
            .args(["check", "--error-exitcode", "42", "--"])
            .arg(&exe)
            .env("EVENTPOLL_CHECK_ONESHOT_MS", "100")
            .output()
            .unwrap();
        let (_, err) = text(&o);
        let total = kinds.len();
        assert!(
            err.contains(&format!(
                "eventpoll check: {total} findings (1 process reported)"
            )),
            "{name}: {err}"
        );
        assert_eq!(status(&o), if total > 0 { 42 } else { 0 }, "{name}: {err}");
        for k in all {
            let line = format!("eventpoll-check: {k} pid=");
            assert_eq!(
                err.contains(&line),
                kinds.contains(&k),
                "{name}, {k}: {err}"
            );
            // The table's row: kind, count 1, and the file's type.
            let row = err.lines().any(|l| {
                l.starts_with(&format!("│ {k} ")) && l.contains("┆ 1 ") && l.contains("pipe")
                    || l.starts_with(&format!("│ {k} ")) && l.contains("eventfd")
            });
            assert_eq!(row, kinds.contains(&k), "{name}, {k} row: {err}");
        }
    }
    // --log: the lines go to the file, the table still to standard error; --json too.
    let (log, json) = (d.join("check.log"), d.join("check.json"));
    let o = eventpoll()
        .arg("check")
        .arg("--log")
        .arg(&log)
        .arg("--json")
        .arg(&json)
        .arg("--")
        .arg(d.join("et_blocking_fd"))
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(status(&o), 0, "the program's own status: {err}");
    assert!(!err.contains("eventpoll-check: et-blocking-fd"), "{err}");
    assert!(err.contains("│ et-blocking-fd"), "{err}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("eventpoll-check: et-blocking-fd pid="),
        "{logged}"
    );
    assert!(logged.contains("eventpoll-check: summary: 1 findings (et-blocking-fd 1)"));
    let j = std::fs::read_to_string(&json).unwrap();
    assert!(
        j.contains("\"et-blocking-fd\": 1") && j.contains("\"total\": 1"),
        "{j}"
    );
    // The program's own failure status comes through.
    let o = eventpoll().args(["check", "--", "false"]).output().unwrap();
    assert_eq!(status(&o), 1);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn check_without_its_library_is_a_clear_error() {
    let d = scratch("check-nolib");
    let exe = lonely_binary(&d);
    let o = Command::new(&exe)
        .args(["check", "--", "true"])
        .env_remove("EVENTPOLL_LIB")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(status(&o), 2, "{err}");
    assert!(
        err.contains("libeventpoll.so was not found") && err.contains("EVENTPOLL_LIB="),
        "{err}"
    );
    let o = Command::new(&exe)
        .args(["check", "--", "true"])
        .env("EVENTPOLL_LIB", d.join("nope.so"))
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(status(&o), 2, "{err}");
    assert!(err.contains("nope.so is not a file"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_small_contention_run_reports_both_sides_with_spreads() {
    let d = scratch("contention");
    let json = d.join("c.json");
    let svg = d.join("c.svg");
    let o = eventpoll()
        .args([
            "bench",
            "contention",
            "--threads",
            "1,2",
            "--modes",
            "lt,oneshot",
            "--eventfds",
            "4",
            "--duration",
            "0.02",
            "--passes",
            "2",
            "--json",
        ])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(status(&o), 0, "{out}{err}");
    for needle in [
        "Available parallelism:",
        "kernel epoll events/ms",
        "eventpoll ÷ kernel",
        "range from spreads",
        "one-shot (MOD re-arm)",
        ", lost 0.",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["benchmark"], "contention");
    assert_eq!(j["cells"].as_array().unwrap().len(), 2 * 2 * 2);
    assert!(j["cells"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "ok" && c["events_per_ms_min"].as_f64().unwrap() > 0.0));
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .contains("producer threads"));
    let o = eventpoll()
        .args(["bench", "contention", "--modes", "kqueue"])
        .output()
        .unwrap();
    assert_eq!(status(&o), 2);
    let o = eventpoll()
        .args(["bench", "contention", "--help"])
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert!(
        out.contains("stress-epoll") && out.contains("--threads"),
        "{out}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
