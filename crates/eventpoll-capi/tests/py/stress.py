"""Eight threads, each with its own epoll over eight socket pairs (LT and ET), sending,
waiting, draining, closing and dup-ing descriptors; then fork with a live instance. Bounded;
exit 0 when every wait saw its event and the child saw the inherited instance."""
import os, select, socket, threading, time, sys
errors = []
def worker(k, rounds=3000):
    try:
        ep = select.epoll()
        pairs = [socket.socketpair() for _ in range(8)]
        for i, (a, b) in enumerate(pairs):
            a.setblocking(False); b.setblocking(False)
            ep.register(a.fileno(), select.EPOLLIN | (select.EPOLLET if k % 2 else 0))
        for r in range(rounds):
            i = r % 8
            pairs[i][1].send(b"x" * (1 + r % 7))
            evs = ep.poll(1.0)
            assert evs, f"thread {k} round {r}: no event"
            for fd, ev in evs:
                s = next(a for a, b in pairs if a.fileno() == fd)
                while True:
                    try:
                        if not s.recv(4096): break
                    except BlockingIOError:
                        break
            if r % 50 == 0:
                # churn: close and replace a pair (interposed close)
                a, b = pairs[i]
                ep.unregister(a.fileno()); a.close(); b.close()
                a, b = socket.socketpair(); a.setblocking(False); b.setblocking(False)
                pairs[i] = (a, b)
                ep.register(a.fileno(), select.EPOLLIN | (select.EPOLLET if k % 2 else 0))
                d = os.dup(a.fileno()); os.close(d)
        ep.close()
        for a, b in pairs: a.close(); b.close()
    except Exception as e:
        errors.append(f"{k}: {e!r}")
ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
t0 = time.time()
for t in ts: t.start()
for t in ts: t.join(60)
# fork with a live instance
ep = select.epoll(); r, w = os.pipe(); ep.register(r, select.EPOLLIN); os.write(w, b"z")
pid = os.fork()
if pid == 0:
    ok = ep.poll(1) == [(r, select.EPOLLIN)]
    os.read(r, 1)
    os._exit(0 if ok and ep.poll(0) == [] else 3)
_, st = os.waitpid(pid, 0)
# parent: the child's read consumed the byte (shared pipe) -> LT item not ready now
parent = ep.poll(0)
print("threads", len(ts), "errors", errors, "time %.1fs" % (time.time() - t0), "child status", st, "parent after child read", parent)
sys.exit(1 if errors or st else 0)
