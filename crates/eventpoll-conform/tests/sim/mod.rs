//! (Part of the crate's one integration-test binary, `tests/conform.rs`.) The `sim` backend (the engine on `eventpoll::sim`, the deterministic platform) is
//! deterministic: the threaded corpus (`scenarios/threads/`) run twice with one seed gives
//! the same trace byte for byte — each scenario's transcript and the scheduler's log of
//! every task it picked and every move of its clock — and another seed picks differently
//! yet prints the same transcripts (each the kernel's: `eventpoll conform` compares them).

use eventpoll_conform::backend::{self, sim};
use eventpoll_conform::{exec, script::Script};
use std::path::PathBuf;

fn threaded_corpus() -> Vec<Script> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/threads");
    let scripts = eventpoll_conform::load(&[dir]).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(scripts.len() >= 90, "{} scenarios", scripts.len());
    scripts
}

/// One run of the corpus with `seed`: the transcripts, and the full trace (each
/// scenario's path, transcript and scheduler log).
fn run_corpus(scripts: &[Script], seed: u64) -> (String, String) {
    let kind = backend::by_name("sim").expect("the sim backend");
    sim::with_seed(seed, || {
        let (mut transcripts, mut trace) = (String::new(), String::new());
        for s in scripts {
            let t = exec::run_script(s, kind);
            assert!(
                t.panic.is_none() && t.timeout.is_none(),
                "{}: {}",
                s.path,
                t.text()
            );
            let log = sim::last_trace().expect("the backend left its trace");
            assert!(log.starts_with(&format!("seed {seed}\n")), "{log}");
            transcripts.push_str(&format!("# {}\n{}", s.path, t.text()));
            trace.push_str(&format!("# {}\n{}{log}", s.path, t.text()));
        }
        (transcripts, trace)
    })
}

#[test]
fn the_same_seed_gives_the_same_trace_byte_for_byte() {
    let scripts = threaded_corpus();
    let (t1, a) = run_corpus(&scripts, 1);
    let (_, b) = run_corpus(&scripts, 1);
    assert!(a == b, "seed 1 ran differently the second time");
    let (t2, c) = run_corpus(&scripts, 2);
    let (_, d) = run_corpus(&scripts, 2);
    assert!(c == d, "seed 2 ran differently the second time");
    // The seed chooses the interleaving, not the results.
    assert_ne!(a, c, "seeds 1 and 2 scheduled every scenario the same way");
    assert_eq!(t1, t2);
    // The scheduler did make choices, and simulated time passed without real waiting.
    assert!(a.lines().filter(|l| l.contains(" run ")).count() > 1000);
    assert!(a.contains(" clock +"));
}
