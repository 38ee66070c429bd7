// Java NIO's Selector (epoll_create1, epoll_ctl, epoll_wait through the JDK's own JNI code,
// and an eventfd for Selector.wakeup) on one machine: what scripts/capi-java.sh runs
// natively and under LD_PRELOAD=libeventpoll.so. Loopback only, every part bounded in time.
// Each part prints one line ending in OK, or FAIL and a reason; the exit status is 0 only
// when every part printed OK.
//
//   echo      a selector serving 8 client threads (blocking sockets), 2,000 round trips
//             each, every answer checked
//   write     a selector writing 4 MiB to a slow reader through OP_WRITE interest (small
//             socket buffers, so that the writer must wait for write space)
//   pipe      a second selector, in its own thread, reading 20,000 messages from a Pipe
//             another thread writes
//   wakeup    Selector.wakeup() from another thread ends a select() that has nothing else
//             to wait for, 200 times
//   timeout   select(20) with nothing ready returns 0 after about 20 ms
//   spawn     child processes (ProcessBuilder: the JDK's posix_spawn/vfork helper) started
//             while the echo selector runs, their exit codes checked
import java.io.*;
import java.net.*;
import java.nio.*;
import java.nio.channels.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

public class NioLoops {
    static final long DEADLINE = System.currentTimeMillis() + 120_000;
    static final List<String> failures = Collections.synchronizedList(new ArrayList<>());

    static void report(String part, boolean ok, String detail) {
        System.out.println(part + ": " + detail + (ok ? " OK" : " FAIL"));
        if (!ok) failures.add(part);
    }

    static void echo() throws Exception {
        int clients = 8, rounds = 2000;
        try (Selector sel = Selector.open(); ServerSocketChannel srv = ServerSocketChannel.open()) {
            srv.bind(new InetSocketAddress("127.0.0.1", 0));
            srv.configureBlocking(false);
            srv.register(sel, SelectionKey.OP_ACCEPT);
            int port = ((InetSocketAddress) srv.getLocalAddress()).getPort();
            AtomicInteger bad = new AtomicInteger();
            Thread[] ts = new Thread[clients];
            for (int c = 0; c < clients; c++) {
                ts[c] = new Thread(() -> {
                    try (SocketChannel s = SocketChannel.open(new InetSocketAddress("127.0.0.1", port))) {
                        ByteBuffer b = ByteBuffer.allocate(8);
                        for (int r = 0; r < rounds; r++) {
                            b.clear(); b.putInt(r).putInt(~r); b.flip();
                            while (b.hasRemaining()) s.write(b);
                            b.clear();
                            while (b.hasRemaining()) if (s.read(b) < 0) throw new IOException("eof");
                            b.flip();
                            if (b.getInt() != r || b.getInt() != ~r) bad.incrementAndGet();
                        }
                    } catch (Exception e) { bad.incrementAndGet(); }
                });
                ts[c].start();
            }
            // Child processes while the selector runs (the JDK spawns through a helper).
            AtomicInteger spawned = new AtomicInteger(), spawnBad = new AtomicInteger();
            Thread spawner = new Thread(() -> {
                for (int i = 0; i < 10; i++) {
                    try {
                        Process p = new ProcessBuilder("sh", "-c", "exit " + (i % 3)).start();
                        if (!p.waitFor(20, TimeUnit.SECONDS) || p.exitValue() != i % 3) spawnBad.incrementAndGet();
                        else spawned.incrementAndGet();
                    } catch (Exception e) { spawnBad.incrementAndGet(); }
                }
            });
            spawner.start();
            int done = 0; long echoed = 0;
            while (done < clients && System.currentTimeMillis() < DEADLINE) {
                sel.select(1000);
                Iterator<SelectionKey> it = sel.selectedKeys().iterator();
                while (it.hasNext()) {
                    SelectionKey k = it.next(); it.remove();
                    if (k.isAcceptable()) {
                        SocketChannel c = srv.accept();
                        if (c != null) { c.configureBlocking(false); c.register(sel, SelectionKey.OP_READ, ByteBuffer.allocate(64)); }
                    } else if (k.isReadable()) {
                        SocketChannel c = (SocketChannel) k.channel();
                        ByteBuffer b = (ByteBuffer) k.attachment();
                        b.clear();
                        int n = c.read(b);
                        if (n < 0) { k.cancel(); c.close(); done++; continue; }
                        b.flip(); echoed += n;
                        while (b.hasRemaining()) c.write(b);
                    }
                }
            }
            for (Thread t : ts) t.join(10_000);
            spawner.join(60_000);
            long want = (long) clients * rounds * 8;
            report("echo", done == clients && echoed == want && bad.get() == 0,
                clients + " clients, " + echoed + " of " + want + " bytes echoed, " + bad.get() + " bad answers");
            report("spawn", spawned.get() == 10 && spawnBad.get() == 0,
                spawned.get() + " of 10 children exited as asked");
        }
    }

    static void write() throws Exception {
        int total = 4 << 20;
        try (Selector sel = Selector.open(); ServerSocketChannel srv = ServerSocketChannel.open()) {
            srv.bind(new InetSocketAddress("127.0.0.1", 0));
            int port = ((InetSocketAddress) srv.getLocalAddress()).getPort();
            AtomicLong got = new AtomicLong(); AtomicInteger bad = new AtomicInteger();
            Thread reader = new Thread(() -> {
                try (SocketChannel s = SocketChannel.open()) {
                    s.setOption(StandardSocketOptions.SO_RCVBUF, 16 << 10);
                    s.connect(new InetSocketAddress("127.0.0.1", port));
                    ByteBuffer b = ByteBuffer.allocate(16 << 10);
                    long at = 0;
                    while (true) {
                        b.clear();
                        int n = s.read(b);
                        if (n < 0) break;
                        for (int i = 0; i < n; i++) if (b.get(i) != (byte) ((at + i) % 251)) bad.incrementAndGet();
                        at += n;
                        if ((at & 0xfffff) < n) Thread.sleep(5); // slow: the writer's buffer fills
                    }
                    got.set(at);
                } catch (Exception e) { bad.incrementAndGet(); }
            });
            reader.start();
            SocketChannel c = srv.accept();
            c.setOption(StandardSocketOptions.SO_SNDBUF, 16 << 10);
            c.configureBlocking(false);
            SelectionKey key = c.register(sel, SelectionKey.OP_WRITE);
            ByteBuffer out = ByteBuffer.allocate(total);
            for (int i = 0; i < total; i++) out.put((byte) (i % 251));
            out.flip();
            int selects = 0, blocked = 0;
            while (out.hasRemaining() && System.currentTimeMillis() < DEADLINE) {
                if (c.write(out) == 0) {
                    blocked++;
                    key.interestOps(SelectionKey.OP_WRITE);
                    sel.select(1000);
                    sel.selectedKeys().clear();
                    selects++;
                }
            }
            c.close();
            reader.join(30_000);
            report("write", got.get() == total && bad.get() == 0 && blocked > 0,
                got.get() + " of " + total + " bytes in order, the writer blocked " + blocked + " times");
        }
    }

    static void pipe() throws Exception {
        int messages = 20_000;
        Pipe p = Pipe.open();
        p.source().configureBlocking(false);
        AtomicLong sum = new AtomicLong(); AtomicInteger count = new AtomicInteger();
        Thread loop = new Thread(() -> {
            try (Selector sel = Selector.open()) {
                p.source().register(sel, SelectionKey.OP_READ);
                ByteBuffer b = ByteBuffer.allocate(4096);
                int partial = 0; int value = 0;
                while (count.get() < messages && System.currentTimeMillis() < DEADLINE) {
                    if (sel.select(1000) == 0) continue;
                    sel.selectedKeys().clear();
                    b.clear();
                    int n = p.source().read(b);
                    b.flip();
                    while (b.hasRemaining()) {
                        value = (value << 8) | (b.get() & 0xff);
                        if (++partial == 4) { sum.addAndGet(value); count.incrementAndGet(); partial = 0; value = 0; }
                    }
                }
            } catch (Exception e) { failures.add("pipe: " + e); }
        });
        loop.start();
        ByteBuffer b = ByteBuffer.allocate(4);
        long want = 0;
        for (int i = 0; i < messages; i++) {
            b.clear(); b.putInt(i); b.flip();
            while (b.hasRemaining()) p.sink().write(b);
            want += i;
        }
        loop.join(60_000);
        p.sink().close(); p.source().close();
        report("pipe", count.get() == messages && sum.get() == want,
            count.get() + " of " + messages + " messages, sum " + sum.get() + " of " + want);
    }

    static void wakeup() throws Exception {
        try (Selector sel = Selector.open()) {
            int n = 200, woken = 0;
            for (int i = 0; i < n; i++) {
                Thread t = new Thread(() -> { try { Thread.sleep(1); } catch (InterruptedException e) {} sel.wakeup(); });
                t.start();
                long t0 = System.nanoTime();
                sel.select(10_000);
                if (System.nanoTime() - t0 < 5_000_000_000L) woken++;
                t.join();
            }
            report("wakeup", woken == n, woken + " of " + n + " selects ended by wakeup()");
        }
    }

    static void timeout() throws Exception {
        Pipe p = Pipe.open();
        try (Selector sel = Selector.open()) {
            p.source().configureBlocking(false);
            p.source().register(sel, SelectionKey.OP_READ);
            long t0 = System.nanoTime();
            int n = sel.select(20);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            report("timeout", n == 0 && ms >= 19 && ms < 2000, "select(20) returned " + n + " after " + ms + " ms");
        } finally {
            p.source().close();
            p.sink().close();
        }
    }

    public static void main(String[] a) throws Exception {
        echo();
        write();
        pipe();
        wakeup();
        timeout();
        System.out.println(failures.isEmpty() ? "all parts OK" : "FAILED: " + failures);
        System.exit(failures.isEmpty() ? 0 : 1);
    }
}
