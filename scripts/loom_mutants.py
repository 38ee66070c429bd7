#!/usr/bin/env python3
"""Check that the loom models (or the stress test) catch real concurrency bugs.

Each mutant re-introduces one classic epoll race into a scratch copy of the workspace
(never the working tree) and runs the loom models there; a mutant is *killed* when at least
one model fails. Usage: scripts/loom_mutants.py [--stress SECONDS] [mutant-name ...]
(default: all mutants, loom models). With --stress, the release eventpoll-stress binary runs
for SECONDS per mutant instead, and a mutant is killed when it reports a violation.
Environment: MUTANTS_TARGET_DIR (default target/loom-mutants or target/stress-mutants in
the repository: never the target dir of the real tree), LOOM_MAX_PREEMPTIONS (default 3).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOLL = "crates/eventpoll/src/epoll/mod.rs"
WQ = "crates/eventpoll/src/wait_queue.rs"
SIGNAL = "crates/eventpoll/src/signal.rs"
PARK = "crates/eventpoll/src/platform/park.rs"
TIMERFD = "crates/eventpoll/src/objects/timerfd.rs"

# (name, what it breaks, [(file, old text, new text), ...])
MUTANTS = [
    (
        'wait_checks_then_queues_unlocked',
        'lost wakeup: the waiter checks the ready list and queues itself in two steps',
        [
            (
                EPOLL,
                """                eavail = r.events_available() || self.notified.load(Ordering::Relaxed);
                if !eavail {""",
                """                eavail = r.events_available() || self.notified.load(Ordering::Relaxed);
                drop(r);
                if !eavail {""",
            ),
        ],
    ),
    (
        'callback_drops_event_during_scan',
        'wakeup during harvest lost: no overflow list',
        [
            (
                EPOLL,
                """                if r.scanning {
                    if s.ovf_next == OVF_NONE {""",
                """                if r.scanning {
                    if false {""",
            ),
        ],
    ),
    (
        'overflow_relinks_linked_items',
        'ready list corrupted: overflow items linked even when already linked',
        [
            (
                EPOLL,
                """            r.slots[cur as usize].ovf_next = OVF_NONE;
            if !r.is_linked(cur) {""",
                """            r.slots[cur as usize].ovf_next = OVF_NONE;
            if r.slots[cur as usize].next != ON_TX {""",
            ),
        ],
    ),
    (
        'done_scan_forgets_next_waiter',
        'LT event reaches one waiter only: no wake after re-appending',
        [
            (
                EPOLL,
                """        if !r.is_empty() {
            self.wq.wake(Events::empty());
        }""",
                """        if false {
            self.wq.wake(Events::empty());
        }""",
            ),
        ],
    ),
    (
        'modify_does_not_poll',
        'MOD racing a wakeup loses the event: MOD does not re-poll',
        [
            (
                EPOLL,
                '        let revents = il.watch(slot).ops.poll() & Events::from_bits_retain(event.events);',
                '        let revents = Events::empty() & il.watch(slot).ops.poll();',
            ),
        ],
    ),
    (
        'modify_polls_before_updating_interest',
        'MOD racing a wakeup: poll before the new interest is visible to callbacks',
        [
            (
                EPOLL,
                """    fn modify(&self, il: &InterestList, slot: u32, mut event: EpollEvent) -> Result<()> {
        {""",
                """    fn modify(&self, il: &InterestList, slot: u32, mut event: EpollEvent) -> Result<()> {
        let early = il.watch(slot).ops.poll();
        {""",
            ),
            (
                EPOLL,
                '        let revents = il.watch(slot).ops.poll() & Events::from_bits_retain(event.events);',
                '        let revents = early & Events::from_bits_retain(event.events);',
            ),
        ],
    ),
    (
        'exclusive_accepts_without_waiters',
        'EPOLLEXCLUSIVE: an instance with no waiter swallows the wakeup',
        [
            (
                EPOLL,
                """                    self.wq.wake(Events::empty());
                }
                pwake = !self.poll_wait.is_empty();""",
                """                    self.wq.wake(Events::empty());
                } else if events.contains(Events::EXCLUSIVE) {
                    ewake = true;
                }
                pwake = !self.poll_wait.is_empty();""",
            ),
        ],
    ),
    (
        'callbacks_run_outside_queue_lock',
        'use after DEL: removal no longer waits for a running callback',
        [
            (
                WQ,
                """            let (accepted, remove) = match &entries[i] {
                Waiter::Item { ep, slot, .. } => (ep.item_callback(*slot, key), false),""",
                """            let item = match &entries[i] {
                Waiter::Item { ep, slot, .. } => Some((ep.clone(), *slot)),
                _ => None,
            };
            if let Some((ep, slot)) = item {
                drop(entries);
                let accepted = ep.item_callback(slot, key);
                entries = lock(&self.entries);
                i += 1;
                if exclusive && accepted {
                    nr_exclusive = nr_exclusive.wrapping_sub(1);
                    if nr_exclusive == 0 {
                        break;
                    }
                }
                continue;
            }
            let (accepted, remove) = match &entries[i] {
                Waiter::Item { .. } => unreachable!(),""",
            ),
        ],
    ),
    (
        'timeout_swallows_wakeup',
        'a timed-out waiter swallows a wake-one meant for another waiter (both safeguards removed: the timeout claim CAS in Parker::sleep and the re-harvest after a timeout that was dequeued by a waker; either alone is enough)',
        [
            (
                PARK,
                """                        if self
                            .state
                            .compare_exchange(PARKED, WOKEN, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                        {
                            return WakeReason::TimedOut;
                        }
                        continue;""",
                """                        self.state.store(WOKEN, Ordering::Release);
                        return WakeReason::TimedOut;""",
            ),
            (
                EPOLL,
                '            eavail = !(timed_out && still_queued);',
                '            eavail = !timed_out;',
            ),
        ],
    ),
    (
        'deferred_unparks_forgotten',
        'lost wakeup: unparks deferred under a waker guard are never issued',
        [
            (
                PARK,
                """                if p.depth == 0 && !p.tasks.is_empty() {""",
                """                if p.depth == 0 && p.tasks.is_empty() {""",
            ),
        ],
    ),
    (
        'interrupt_not_rechecked_after_publishing_sleeper',
        'lost interrupt: raised between the pending check and the sleep',
        [
            (
                SIGNAL,
                """        if self.is_pending() {
            parker.interrupt();
        }
        let reason""",
                '        let reason',
            ),
        ],
    ),
    (
        'release_item_indexes_unchecked',
        "the bug fixed in 'core: fix a panic ...': release_file_item after release_all",
        [
            (
                EPOLL,
                """            .get(slot as usize)
            .and_then(Option::as_ref)""",
                """            [slot as usize]
            .as_ref()""",
            ),
        ],
    ),
    (
        'timerfd_wakes_after_unlock',
        'the race fixed in d420f89: a timer ticks under its lock and wakes its queue after',
        [
            (
                TIMERFD,
                """        st.ticks += 1;
        self.queue.wake(Events::IN);""",
                """        st.ticks += 1;
        drop(st);
        self.queue.wake(Events::IN);""",
            ),
        ],
    ),
]


def run(workdir, env, stress=None):
    if stress is not None:
        b = subprocess.run(["cargo", "build", "--release", "-p", "eventpoll-stress"],
                           cwd=workdir, env=env, capture_output=True, text=True)
        if b.returncode != 0:
            return b.returncode, [], False, b.stdout + b.stderr
        exe = os.path.join(env["CARGO_TARGET_DIR"], "release", "eventpoll-stress")
        p = subprocess.run([exe, "--seconds", str(stress)], cwd=workdir, env=env,
                           capture_output=True, text=True)
        out = p.stdout + p.stderr
        failed = ["eventpoll-stress"] if p.returncode != 0 else []
        return p.returncode, failed, True, out
    cmd = [
        "cargo", "test", "-p", "eventpoll", "--lib", "--release", "loom_models",
        "--", "--test-threads=1",
    ]
    p = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    out = p.stdout + p.stderr
    failed = [l.split()[1] for l in out.splitlines()
              if l.startswith("test ") and l.rstrip().endswith("FAILED")]
    built = "error[" not in out and "could not compile" not in out
    return p.returncode, failed, built, out


def main():
    args = sys.argv[1:]
    stress = None
    if args[:1] == ["--stress"]:
        stress = float(args[1])
        args = args[2:]
    names = args
    env = dict(os.environ)
    if stress is None:
        env["RUSTFLAGS"] = "--cfg loom"
    else:
        env.pop("RUSTFLAGS", None)
    # Never share the models' own target dir: the scratch copy has the same package ids,
    # and cargo would later take a mutant's binary for an up-to-date build of the real tree.
    default_dir = os.path.join(ROOT, "target", "loom-mutants" if stress is None else "stress-mutants")
    env["CARGO_TARGET_DIR"] = env.get("MUTANTS_TARGET_DIR", default_dir)
    env.setdefault("LOOM_MAX_PREEMPTIONS", "3")
    scratch = tempfile.mkdtemp(prefix="eventpoll-mutants-")
    work = os.path.join(scratch, "ws")
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns("target*", ".git"))
    survivors = 0
    try:
        for name, what, edits in MUTANTS:
            if names and name not in names:
                continue
            originals = {}
            ok = True
            for path, old, new in edits:
                target = os.path.join(work, path)
                current = open(target).read()
                originals.setdefault(target, current)
                if old not in current:
                    ok = False
                    break
                open(target, "w").write(current.replace(old, new, 1))
            if not ok:
                for target, text in originals.items():
                    open(target, "w").write(text)
                print(f"{name}: SKIPPED (pattern not found: engine changed?)")
                survivors += 1
                continue
            t0 = time.time()
            rc, failed, built, out = run(work, env, stress)
            for target, text in originals.items():
                open(target, "w").write(text)
            dt = time.time() - t0
            if not built:
                print(f"{name}: DID NOT BUILD\n{out[-3000:]}")
                survivors += 1
            elif rc != 0:
                # A deadlock found by loom can abort the test binary (a panic while
                # unwinding), so the failing model is then the last one that started.
                started = [l.split()[1] for l in out.splitlines()
                           if l.startswith("test ") and " ... " in l]
                by = ", ".join(failed) if failed else f"{started[-1] if started else '?'} (aborted)"
                reason = "deadlock" if "deadlock" in out else "assertion/panic"
                if stress is not None:
                    vl = [l for l in out.splitlines() if l.startswith("violations:")]
                    reason = (vl[0] if vl else "crashed") + " | " + next(
                        (l.strip() for l in out.splitlines() if l.startswith("  ") and ":" in l
                         and not l.strip().startswith(("writes", "ctl"))), "")
                print(f"{name}: killed in {dt:.0f}s by {by}: {reason}  [{what}]")
            else:
                print(f"{name}: SURVIVED ({dt:.0f}s)  [{what}]")
                survivors += 1
    finally:
        shutil.rmtree(scratch)
    print(f"{survivors} mutant(s) survived")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
