"""Run a unittest suite test by test and record each test's outcome, surviving hangs.

A test that hangs (an event loop never woken) must not take the rest of the suite with it:
the driver runs the tests in a child process, watches a pipe on which the child announces
each test's start and end, and when a test runs past its time limit (or the child dies) it
records that test as `timeout` (or `crash`), kills the child's whole process group and
starts a new child with the tests not yet run. The driver itself never loads
libeventpoll: `--preload LIB` puts it into the child's environment only.

    pertest.py list START_DIR                       -- print the suite's test ids
    pertest.py drive --python PY --cwd DIR --ids FILE --out FILE --log FILE
                     [--per-test S] [--budget S] [--preload LIB]

`drive` writes one line per test to --out, `<id> <outcome>`, sorted, outcome one of ok,
skipped, fail, error, expected-failure, unexpected-success, never-started (a failed class or
module fixture), timeout, crash, not-run (the
--budget of wall-clock seconds ran out first); the children's output goes to --log.
Exit status 0 when every test got an outcome line (whatever it is), 2 on a usage error.
"""
import os
import select
import signal
import subprocess
import sys
import time
import unittest

EVENT_FD = "PERTEST_EVENT_FD"


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def list_ids(start):
    suite = unittest.TestLoader().discover(start, top_level_dir=os.getcwd())
    for t in iter_tests(suite):
        print(t.id())


class Announce(unittest.TestResult):
    """A result that writes `start ID` and `OUTCOME ID` lines to the driver's pipe."""

    def __init__(self, fd):
        super().__init__()
        self.fd = fd
        self.outcome = None

    def emit(self, line):
        os.write(self.fd, (line + "\n").encode())

    def startTest(self, test):
        super().startTest(test)
        self.outcome = "ok"
        self.emit("start " + test.id())

    def stopTest(self, test):
        super().stopTest(test)
        self.emit(self.outcome + " " + test.id())

    def report(self, outcome, test, err):
        if err is not None:
            sys.stderr.write("%s %s\n%s\n" % (outcome.upper(), test.id(), self._exc_info_to_string(err, test)))
            sys.stderr.flush()

    def addError(self, test, err):
        super().addError(test, err)
        self.outcome = "error"
        self.report("error", test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcome = "fail"
        self.report("fail", test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            if self.outcome != "error":
                self.outcome = "fail" if failed else "error"
            self.report(self.outcome, subtest, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcome = "skipped"

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcome = "expected-failure"

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcome = "unexpected-success"


def child(ids_file):
    """Runs in the (possibly preloaded) child: each listed test in order."""
    fd = int(os.environ.pop(EVENT_FD))
    os.set_inheritable(fd, False)
    maps = open("/proc/self/maps").read()
    os.write(fd, ("preloaded %s\n" % ("libeventpoll" in maps)).encode())
    ids = open(ids_file).read().split()
    # One suite of all the tests, so class and module fixtures run once as in a plain run.
    unittest.TestLoader().loadTestsFromNames(ids).run(Announce(fd))
    os.write(fd, b"done\n")


def drive(args):
    opts = {"--per-test": "60", "--budget": "240", "--preload": ""}
    it = iter(args)
    for a in it:
        opts[a] = next(it)
    for need in ("--python", "--cwd", "--ids", "--out", "--log"):
        if need not in opts:
            print("missing", need, file=sys.stderr)
            return 2
    per_test, budget = float(opts["--per-test"]), float(opts["--budget"])
    ids = open(opts["--ids"]).read().split()
    outcome = {}
    deadline = time.monotonic() + budget
    log = open(opts["--log"], "ab")
    pending_file = opts["--out"] + ".pending"
    preloaded_seen = []
    children = 0
    while True:
        todo = [t for t in ids if t not in outcome]
        if not todo:
            break
        if time.monotonic() >= deadline:
            for t in todo:
                outcome[t] = "not-run"
            break
        with open(pending_file, "w") as f:
            f.write("\n".join(todo) + "\n")
        r, w = os.pipe()
        env = dict(os.environ)
        env[EVENT_FD] = str(w)
        env.pop("LD_PRELOAD", None)
        if opts["--preload"]:
            env["LD_PRELOAD"] = opts["--preload"]
        proc = subprocess.Popen(
            [opts["--python"], os.path.abspath(__file__), "child", pending_file],
            cwd=opts["--cwd"], env=env, pass_fds=(w,), stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True)
        children += 1
        os.close(w)
        current, since, buf, done = None, time.monotonic(), b"", False
        while True:
            now = time.monotonic()
            limit = min(since + per_test, deadline)
            ready, _, _ = select.select([r], [], [], max(0.0, limit - now))
            if not ready:
                # This test ran out of time (or the whole budget did).
                now = time.monotonic()
                if current is not None:
                    outcome[current] = "timeout" if now >= since + per_test else "not-run"
                log.write(("\n[pertest] %s: killed after %.0f s\n" % (current, now - since)).encode())
                break
            chunk = os.read(r, 65536)
            if not chunk:
                if current is not None:
                    outcome[current] = "crash"
                    log.write(("\n[pertest] %s: child exited during the test (%s)\n"
                               % (current, proc.poll())).encode())
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                word, _, rest = line.decode().partition(" ")
                if word == "preloaded":
                    preloaded_seen.append(rest == "True")
                elif word == "start":
                    current, since = rest, time.monotonic()
                elif word == "done":
                    done = True
                    # Tests the child never started (their class or module fixture
                    # failed: the log says why).
                    for t in todo:
                        outcome.setdefault(t, "never-started")
                else:
                    outcome[rest] = word
                    took = time.monotonic() - since
                    if took >= 2:
                        log.write(("\n[pertest] %s: %s after %.1f s\n" % (rest, word, took)).encode())
                    current, since = None, time.monotonic()
            if done:
                break
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        os.close(r)
        log.flush()
    os.unlink(pending_file)
    with open(opts["--out"], "w") as f:
        for t in sorted(ids):
            f.write("%s %s\n" % (t, outcome.get(t, "not-run")))
    want = bool(opts["--preload"])
    if any(p != want for p in preloaded_seen):
        print("pertest: libeventpoll %s in a child" % ("missing" if want else "present"), file=sys.stderr)
        return 1
    print("pertest: %d tests, %d child processes" % (len(ids), children))
    return 0


def main():
    # Test ids are module paths under the working directory (not this script's).
    sys.path[0] = os.getcwd()
    if len(sys.argv) >= 3 and sys.argv[1] == "list":
        list_ids(sys.argv[2])
        return 0
    if len(sys.argv) >= 3 and sys.argv[1] == "child":
        child(sys.argv[2])
        return 0
    if len(sys.argv) >= 2 and sys.argv[1] == "drive":
        return drive(sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
