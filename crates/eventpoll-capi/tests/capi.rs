//! Integration tests of libeventpoll as C programs see it: `tests/c/errors.c` (every error
//! path and edge case, with the errno Linux gives) compiled with `cc` and run four ways —
//! against glibc alone (the kernel: proof that the expectations are Linux's), linked with
//! `libeventpoll.so`, linked with `libeventpoll.a`, and the glibc build under `LD_PRELOAD` —
//! plus a Python smoke run under `LD_PRELOAD` when `python3` is present.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory with `libeventpoll.so` and `.a`: this test runs from `<target>/<profile>/deps`.
/// `cargo test` does not build a cdylib/staticlib-only crate for its own integration tests,
/// so the first test to need the library builds it (same target directory and profile);
/// `cargo test --workspace` then works on a fresh clone.
fn lib_dir() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    BUILD.call_once(|| {
        let target_dir = dir.parent().unwrap();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "eventpoll-capi", "--target-dir"])
            .arg(target_dir);
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for libeventpoll");
        assert!(status.success(), "cargo build -p eventpoll-capi failed");
    });
    assert!(
        dir.join("libeventpoll.so").is_file(),
        "libeventpoll.so not built in {}",
        dir.display()
    );
    dir
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A test's own directory for the programs it builds, under Cargo's scratch directory for
/// integration tests (`target/tmp`), never the system's temporary directory: removed when
/// the test ends, kept (and named on standard error) when it fails, for a look at what ran.
/// Each test has its own, so that no test removes another's files while they run.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("eventpoll-capi-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the test's programs are kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A test's C program `tests/c/FILE`, built into its own [`Scratch`] directory as `NAME`
/// (the directory is returned with the program: it lives as long as the test holds it);
/// `None`, said on standard error, where there is no `cc`.
fn c_program(test: &str, file: &str, name: &str, extra: &[&str]) -> Option<(Scratch, PathBuf)> {
    if !have("cc") {
        eprintln!("cc not found: skipped");
        return None;
    }
    let dir = Scratch::new(test);
    let exe = dir.join(name);
    cc_file(file, &exe, extra);
    Some((dir, exe))
}

fn cc(out: &Path, extra: &[&str]) {
    cc_file("errors.c", out, extra)
}

fn cc_file(file: &str, out: &Path, extra: &[&str]) {
    let src = crate_dir().join("tests/c").join(file);
    let mut cmd = Command::new("cc");
    cmd.args([
        "-O0",
        "-Wall",
        "-Wno-stringop-overflow",
        "-Wno-nonnull",
        "-o",
    ])
    .arg(out)
    .arg(&src)
    .args(extra);
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Run and check the closing line says every check passed.
fn run(cmd: &mut Command, what: &str) {
    run_at_least(cmd, what, 100)
}

fn run_at_least(cmd: &mut Command, what: &str, min_checks: u32) {
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        o.status.success() && last.ends_with(" passed, 0 failed"),
        "{what}: status {:?}\n{stdout}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let passed: u32 = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= min_checks, "{what}: only {passed} checks ran");
}

#[test]
fn c_error_paths_match_the_kernel_in_every_build() {
    if !have("cc") {
        eprintln!("cc not found: skipped");
        return;
    }
    let lib = lib_dir();
    let inc = crate_dir().join("include");
    let out = Scratch::new("errors");
    let native = out.join("errors_native");
    let shared = out.join("errors_so");
    let fixed = out.join("errors_a");
    cc(&native, &["-lpthread"]);
    let (l, i) = (lib.display().to_string(), inc.display().to_string());
    cc(
        &shared,
        &[
            "-DEVENTPOLL",
            &format!("-I{i}"),
            &format!("-L{l}"),
            "-leventpoll",
            &format!("-Wl,-rpath,{l}"),
            "-lpthread",
        ],
    );
    cc(
        &fixed,
        &[
            "-DEVENTPOLL",
            &format!("-I{i}"),
            &lib.join("libeventpoll.a").display().to_string(),
            "-lpthread",
            "-ldl",
            "-lm",
        ],
    );
    run(&mut Command::new(&native), "kernel (glibc)");
    run(&mut Command::new(&shared), "linked with libeventpoll.so");
    run(&mut Command::new(&fixed), "linked with libeventpoll.a");
    run(
        Command::new(&native).env("LD_PRELOAD", lib.join("libeventpoll.so")),
        "LD_PRELOAD (the default driver, the kernel epoll)",
    );
    run(
        Command::new(&native)
            .env("LD_PRELOAD", lib.join("libeventpoll.so"))
            .env("EVENTPOLL_DRIVER", "uring"),
        "LD_PRELOAD, io_uring driver",
    );
    run(
        Command::new(&native)
            .env("LD_PRELOAD", lib.join("libeventpoll.so"))
            .env("EVENTPOLL_DRIVER", "poll"),
        "LD_PRELOAD, poll driver",
    );
    // Tracing must not read what the calls do not (a DEL's event, a bad pointer).
    run(
        Command::new(&native)
            .env("LD_PRELOAD", lib.join("libeventpoll.so"))
            .env("EVENTPOLL_LOG", "1"),
        "LD_PRELOAD, EVENTPOLL_LOG=1",
    );
}

/// `tests/c/stack_buffers.c`: a wait into a buffer on the waiting thread's own live stack
/// makes no pointer probe (the main thread's, a glibc thread's, a thread on a stack the
/// program gave), nor does `epoll_ctl` reading its event there; a heap buffer or event, a
/// dead frame below the stack pointer, a buffer just above a thread stack's top and a
/// handler's buffer on a `sigaltstack` are probed once per call.
/// Probes are counted (`eventpoll_user_probes`), not timed; every result is also checked
/// against glibc alone.
#[test]
fn c_stack_buffers_skip_the_probe_and_others_keep_it() {
    if !have("cc") {
        eprintln!("cc not found: skipped");
        return;
    }
    let lib = lib_dir();
    let out = Scratch::new("stack");
    let native = out.join("stack_buffers_native");
    let shared = out.join("stack_buffers_so");
    cc_file("stack_buffers.c", &native, &["-lpthread", "-ldl"]);
    let l = lib.display().to_string();
    cc_file(
        "stack_buffers.c",
        &shared,
        &[
            &format!("-L{l}"),
            "-leventpoll",
            &format!("-Wl,-rpath,{l}"),
            "-lpthread",
            "-ldl",
        ],
    );
    // Natively only the results are checked; with the library every case's count too. A
    // long variable puts the environment's strings pages above argc (a case needs that).
    let pad = "x".repeat(3 * 4096);
    run_at_least(
        Command::new(&native).env("EVENTPOLL_TEST_PAD", &pad),
        "kernel (glibc)",
        34,
    );
    run_at_least(
        Command::new(&shared).env("EVENTPOLL_TEST_PAD", &pad),
        "linked with libeventpoll.so",
        48,
    );
    for driver in ["uring", "epoll", "poll"] {
        run_at_least(
            Command::new(&native)
                .env("EVENTPOLL_TEST_PAD", &pad)
                .env("LD_PRELOAD", lib.join("libeventpoll.so"))
                .env("EVENTPOLL_DRIVER", driver),
            &format!("LD_PRELOAD, {driver} driver"),
            48,
        );
    }
}

/// `tests/c/threads.c`: wakeups across threads (issue 12: a cross-thread eventfd write
/// wakes `epoll_wait`, `poll`/`select` sleepers beside another thread's wait, items whose
/// arming thread exited, an ET eventfd with three threads), against glibc alone and under
/// `LD_PRELOAD` with each driver and the io_uring driver's shared mode. Every wait is
/// bounded: a lost wakeup fails a check.
#[test]
fn c_thread_wakeups_match_the_kernel_with_every_driver() {
    let Some((_dir, exe)) = c_program("threads", "threads.c", "threads_native", &["-lpthread"])
    else {
        return;
    };
    let lib = lib_dir();
    run_at_least(&mut Command::new(&exe), "threads: kernel (glibc)", 15);
    let so = lib.join("libeventpoll.so");
    for (driver, shared) in [
        ("uring", false),
        ("uring", true),
        ("epoll", false),
        ("poll", false),
    ] {
        let mut cmd = Command::new(&exe);
        cmd.env("LD_PRELOAD", &so).env("EVENTPOLL_DRIVER", driver);
        if shared {
            cmd.env("EVENTPOLL_URING_SHARED", "1");
        }
        run_at_least(
            &mut cmd,
            &format!("threads: LD_PRELOAD, driver {driver}, shared {shared}"),
            15,
        );
    }
    // The thread that armed the polls is the process's first epoll user and exits.
    for driver in ["uring", "epoll"] {
        let mut cmd = Command::new(&exe);
        cmd.arg("f7")
            .env("LD_PRELOAD", &so)
            .env("EVENTPOLL_DRIVER", driver);
        run_at_least(&mut cmd, &format!("threads f7 alone: driver {driver}"), 2);
    }
    // The second thread's wait is the process's first call from another thread (the
    // io_uring driver's switch to shared mode), with no wakeup owed or one.
    for case in ["one-edge", "two-edges"] {
        for driver in ["uring", "epoll", "poll"] {
            let mut cmd = Command::new(&exe);
            cmd.arg(case)
                .env("LD_PRELOAD", &so)
                .env("EVENTPOLL_DRIVER", driver);
            run_at_least(
                &mut cmd,
                &format!("threads {case} alone: driver {driver}"),
                2,
            );
        }
    }
}

/// `tests/c/fork_exit.c`: a forked child that duplicated a descriptor (through the calls
/// the library interposes) and exited has closed it before its parent's `waitpid` returns
/// (a FIFO's reader is gone: a writer's open is `ENXIO`; a pipe's writer is gone: end of
/// file), against glibc alone and under `LD_PRELOAD` with each driver and the io_uring
/// driver's shared mode.
#[test]
fn c_child_exit_releases_its_files_with_every_driver() {
    let Some((_dir, exe)) = c_program("fork-exit", "fork_exit.c", "fork_exit_native", &[]) else {
        return;
    };
    let lib = lib_dir();
    run_at_least(&mut Command::new(&exe), "fork_exit: kernel (glibc)", 10);
    let so = lib.join("libeventpoll.so");
    for (driver, shared) in [
        ("uring", false),
        ("uring", true),
        ("epoll", false),
        ("poll", false),
    ] {
        let mut cmd = Command::new(&exe);
        cmd.env("LD_PRELOAD", &so).env("EVENTPOLL_DRIVER", driver);
        if shared {
            cmd.env("EVENTPOLL_URING_SHARED", "1");
        }
        run_at_least(
            &mut cmd,
            &format!("fork_exit: LD_PRELOAD, driver {driver}, shared {shared}"),
            10,
        );
    }
}

/// `tests/c/exit_releases_watched.c`: a child that watches a listening socket and a pipe's
/// write end in an instance and ends (`_exit`, or killed by `SIGTERM`) has released both
/// before its parent's `waitpid` returns — the port can be bound again at once, the pipe
/// reads end of file — against glibc alone and under `LD_PRELOAD` with the default driver,
/// `epoll` and `poll`. The io_uring driver does not keep this (the C ABI's deviation 15:
/// its polls hold the files until the ring's teardown after the exit): it runs in
/// `--report` mode, which only counts, and the counts are printed.
#[test]
fn c_watched_files_end_with_their_process() {
    let Some((_dir, exe)) = c_program(
        "exit-releases",
        "exit_releases_watched.c",
        "exit_releases_watched",
        &[],
    ) else {
        return;
    };
    let lib = lib_dir();
    run_at_least(
        &mut Command::new(&exe),
        "exit_releases: kernel (glibc)",
        240,
    );
    let so = lib.join("libeventpoll.so");
    for driver in [None, Some("epoll"), Some("poll")] {
        let mut cmd = Command::new(&exe);
        cmd.env("LD_PRELOAD", &so).env_remove("EVENTPOLL_DRIVER");
        if let Some(d) = driver {
            cmd.env("EVENTPOLL_DRIVER", d);
        }
        run_at_least(
            &mut cmd,
            &format!("exit_releases: LD_PRELOAD, driver {driver:?}"),
            240,
        );
    }
    let o = Command::new(&exe)
        .arg("--report")
        .env("LD_PRELOAD", &so)
        .env("EVENTPOLL_DRIVER", "uring")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "exit_releases --report, uring: {stdout}"
    );
    for line in stdout.lines().filter(|l| l.starts_with("rounds ")) {
        eprintln!("io_uring driver (deviation 15): {line}");
    }
}

const PY_SMOKE: &str = r#"
import os, select, socket
ep = select.epoll()
r, w = os.pipe()
ep.register(r, select.EPOLLIN)
assert ep.poll(0) == []
os.write(w, b"x")
assert ep.poll(1) == [(r, select.EPOLLIN)]
assert ep.poll(0) == [(r, select.EPOLLIN)], "level-triggered"
os.read(r, 1)
a, b = socket.socketpair()
ep.register(a.fileno(), select.EPOLLIN | select.EPOLLET)
b.send(b"hi")
assert ep.poll(1) == [(a.fileno(), select.EPOLLIN)]
assert ep.poll(0) == [], "edge-triggered"
assert select.select([ep.fileno()], [], [], 0)[0] == []
b.send(b"!")
assert select.select([ep.fileno()], [], [], 1)[0] == [ep.fileno()], "epfd readable"
ep.close()
print("python ok")
"#;

#[test]
fn python_select_epoll_runs_on_eventpoll() {
    if !have("python3") {
        eprintln!("python3 not found: skipped");
        return;
    }
    let lib = lib_dir();
    let o = Command::new("python3")
        .args(["-c", PY_SMOKE])
        .env("LD_PRELOAD", lib.join("libeventpoll.so"))
        .env("EVENTPOLL_LOG", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && stdout.contains("python ok"),
        "{stdout}\n{stderr}"
    );
    // The trace shows that the calls went through eventpoll.
    assert!(stderr.contains("epoll_create1(0x80000) = "), "{stderr}");
    assert!(stderr.contains("epoll_ctl("), "{stderr}");
}

#[test]
fn python_threads_and_fork_under_preload() {
    if !have("python3") {
        eprintln!("python3 not found: skipped");
        return;
    }
    let lib = lib_dir();
    for driver in ["uring", "epoll", "poll"] {
        let o = Command::new("python3")
            .arg(crate_dir().join("tests/py/stress.py"))
            .env("LD_PRELOAD", lib.join("libeventpoll.so"))
            .env("EVENTPOLL_DRIVER", driver)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{driver}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// `scripts/capi-install.sh PREFIX` (with the library this test run built), then a C
/// program built with `pkg-config --cflags --libs eventpoll` runs with no variable set
/// (no LD_LIBRARY_PATH, no LD_PRELOAD): the installed pkg-config file's run path finds the
/// installed library, whose SONAME is libeventpoll.so.
#[test]
fn a_program_built_with_pkg_config_runs_against_the_installed_library() {
    let lib = lib_dir();
    let profile = lib.file_name().unwrap().to_str().unwrap().to_string();
    let target_dir = lib.parent().unwrap();
    let dir = Scratch::new("installed");
    let prefix = dir.join("prefix");
    let script = crate_dir().join("../../scripts/capi-install.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg(&prefix)
        .env("EVENTPOLL_INSTALL_PROFILE", &profile)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "capi-install.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let installed = prefix.join("lib/libeventpoll.so");
    for f in [
        "lib/libeventpoll.so",
        "lib/libeventpoll.a",
        "include/eventpoll.h",
        "lib/pkgconfig/eventpoll.pc",
    ] {
        assert!(prefix.join(f).is_file(), "{f} not installed");
    }
    let soname = Command::new("readelf").arg("-d").arg(&installed).output();
    if let Ok(o) = soname {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Library soname: [libeventpoll.so]"), "{text}");
    }
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "eventpoll"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config");
    assert!(flags.status.success(), "pkg-config failed");
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    assert!(flags.contains("-Wl,-rpath,"), "{flags}");
    let exe = dir.join("installed");
    let o = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(crate_dir().join("tests/c/installed.c"))
        .args(flags.split_whitespace())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(&exe)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("wait 1 data 42 lib {}", installed.display())
    );
}

/// The checker's programs (`tests/c/check/`): each pitfall, and the expected summary of
/// `EVENTPOLL_CHECK` (the kinds in the library's order), or `0 findings` for the correct
/// forms. A ghost event needs a ghost item: that program has both (and so has the one that
/// keeps the description by a number received over a unix socket, which reports as Linux).
pub const CHECK_PROGRAMS: [(&str, &str); 12] = [
    ("ghost_item", "1 findings (ghost-item 1)"),
    ("ghost_event", "2 findings (ghost-item 1, ghost-event 1)"),
    (
        "ghost_item_received",
        "2 findings (ghost-item 1, ghost-event 1)",
    ),
    ("undrained_edge", "1 findings (undrained-edge 1)"),
    ("oneshot_unarmed", "1 findings (oneshot-unarmed 1)"),
    ("herd", "1 findings (herd 1)"),
    ("et_blocking_fd", "1 findings (et-blocking-fd 1)"),
    ("ok_et_drain", "0 findings"),
    ("ok_oneshot_rearm", "0 findings"),
    ("ok_exclusive", "0 findings"),
    ("ok_dup_del_close", "0 findings"),
    ("ok_et_race", "0 findings"),
];

/// Each checker program, natively (it must run the same without the library) and under
/// `LD_PRELOAD` with `EVENTPOLL_CHECK=1`: its finding lines name exactly its kind, and the
/// exit summary counts them.
#[test]
fn check_programs_name_exactly_their_pitfall() {
    if !have("cc") {
        eprintln!("skipped: no cc");
        return;
    }
    let so = lib_dir().join("libeventpoll.so");
    let dir = Scratch::new("check");
    for (name, summary) in CHECK_PROGRAMS {
        let exe = dir.join(format!("check-{name}"));
        cc_file(&format!("check/{name}.c"), &exe, &["-pthread"]);
        let native = Command::new(&exe)
            .env("EVENTPOLL_CHECK_ONESHOT_MS", "100")
            .output()
            .unwrap();
        assert!(native.status.success(), "{name} natively: {native:?}");
        let o = Command::new(&exe)
            .env("LD_PRELOAD", &so)
            .env("EVENTPOLL_CHECK", "1")
            .env("EVENTPOLL_CHECK_ONESHOT_MS", "100")
            .env_remove("EVENTPOLL_DRIVER")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name} checked: {:?}\n{err}", o.status);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("eventpoll-check: "))
            .collect();
        assert_eq!(
            lines.last().copied(),
            Some(format!("eventpoll-check: summary: {summary}").as_str()),
            "{name}:\n{err}"
        );
        // One line per kind named in the summary, each of a named kind.
        let kinds: Vec<&str> = lines[..lines.len() - 1]
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap())
            .collect();
        for k in &kinds {
            assert!(summary.contains(&format!("{k} 1")), "{name}: {k} in\n{err}");
            let line = lines
                .iter()
                .find(|l| l.split(' ').nth(1) == Some(k))
                .unwrap();
            assert!(
                line.contains(" pid=") && line.contains(" fd=") && line.contains(" data=0x"),
                "{name}: {line}"
            );
        }
        let named = summary.matches(" 1").count();
        assert_eq!(kinds.len(), named, "{name}:\n{err}");
    }
}

/// A number received over a unix socket (`SCM_RIGHTS`) that keeps a description with an
/// item alive: with each driver, the item survives the close of the registered number and
/// reports (as natively: the program checks it), and the ghost-item names the received
/// number, which the program prints.
#[test]
fn a_ghost_item_kept_by_a_received_number_names_it() {
    let Some((_dir, exe)) = c_program(
        "check-keeper",
        "check/ghost_item_received.c",
        "check-ghost_item_received-keeper",
        &["-pthread"],
    ) else {
        return;
    };
    let so = lib_dir().join("libeventpoll.so");
    for driver in ["uring", "epoll", "poll"] {
        let o = Command::new(&exe)
            .env("LD_PRELOAD", &so)
            .env("EVENTPOLL_CHECK", "1")
            .env("EVENTPOLL_DRIVER", driver)
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(o.status.success(), "{driver}: {:?}\n{err}", o.status);
        let keeper: i32 = out
            .trim()
            .strip_prefix("keeper=")
            .and_then(|k| k.parse().ok())
            .unwrap_or_else(|| panic!("{driver}: no keeper in {out:?}"));
        let line = err
            .lines()
            .find(|l| l.starts_with("eventpoll-check: ghost-item "))
            .unwrap_or_else(|| panic!("{driver}: no ghost-item in\n{err}"));
        assert!(
            line.contains(&format!("because fd {keeper} still refers")),
            "{driver}: {line}"
        );
        // Checking off: the same behaviour (the program asserts the event), no line.
        let o = Command::new(&exe)
            .env("LD_PRELOAD", &so)
            .env("EVENTPOLL_DRIVER", driver)
            .output()
            .unwrap();
        assert!(o.status.success(), "{driver}, checking off: {o:?}");
        assert!(!String::from_utf8_lossy(&o.stderr).contains("eventpoll-check"));
    }
}

/// An unknown `EVENTPOLL_CHECK` value and an unwritable path: said once, and the program
/// runs on (checking off, or to standard error).
#[test]
fn check_setting_errors_are_reported_once_and_the_program_runs_on() {
    let Some((_dir, exe)) = c_program(
        "check-settings",
        "check/ghost_item.c",
        "check-ghost_item-settings",
        &["-pthread"],
    ) else {
        return;
    };
    let so = lib_dir().join("libeventpoll.so");
    let o = Command::new(&exe)
        .env("LD_PRELOAD", &so)
        .env("EVENTPOLL_CHECK", "yes")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        err.matches("EVENTPOLL_CHECK=yes is neither 1 nor an absolute path")
            .count(),
        1,
        "{err}"
    );
    assert!(!err.contains("eventpoll-check:"), "{err}");
    let o = Command::new(&exe)
        .env("LD_PRELOAD", &so)
        .env("EVENTPOLL_CHECK", "/nonexistent-dir/check.log")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("cannot open it").count(), 1, "{err}");
    assert!(
        err.contains("eventpoll-check: summary: 1 findings (ghost-item 1)"),
        "{err}"
    );
}

/// Settings the library cannot follow are said once on standard error, and the program runs
/// on: an unknown driver (the default is used), a relative or unopenable log path (the trace
/// goes to standard error); with the log on, its first line names the driver in use.
#[test]
fn setting_errors_are_reported_once_and_the_program_runs_on() {
    let Some((_dir, exe)) = c_program(
        "settings",
        "check/ghost_item.c",
        "settings-ghost_item",
        &["-pthread"],
    ) else {
        return;
    };
    let so = lib_dir().join("libeventpoll.so");
    let run = |var: &str, value: &str| {
        let o = Command::new(&exe)
            .env("LD_PRELOAD", &so)
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{var}={value}: {err}");
        err
    };
    let err = run("EVENTPOLL_DRIVER", "bogus");
    assert_eq!(
        err.matches(
            "EVENTPOLL_DRIVER=bogus is not a driver (uring, epoll or poll): using the default"
        )
        .count(),
        1,
        "{err}"
    );
    let err = run("EVENTPOLL_LOG", "relative.log");
    assert_eq!(
        err.matches(
            "EVENTPOLL_LOG=relative.log is not an absolute path: tracing to standard error"
        )
        .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains(", driver "),
        "the trace names the driver: {err}"
    );
    let err = run("EVENTPOLL_LOG", "/nonexistent-dir/trace.log");
    assert_eq!(err.matches("cannot open it").count(), 1, "{err}");
}
