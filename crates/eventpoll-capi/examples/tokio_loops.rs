//! A tokio program for `scripts/capi-tokio.sh`: a multi-threaded runtime through cross-thread
//! wakers, `spawn_blocking`, timers and TCP on loopback, printing a transcript that is the
//! same on every run of a correct event loop (no ports, times or thread names). The script
//! runs it natively and under `LD_PRELOAD=libeventpoll.so` and compares the transcripts.
//!
//! Tokio's runtime parks its I/O driver in `epoll_wait` and is woken from other threads by
//! mio's `Waker` (an eventfd written from the waking thread): exactly the wakeups the
//! library must deliver to a thread blocked in a wait. Each step has a deadline: a step
//! that never finishes prints `<step>: timeout` and the run goes on, and a watchdog ends the
//! whole process after two minutes, so a lost wakeup shows as lines of difference, not as a
//! hung run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// How long one step may take before it counts as hung (10 s; natively each takes < 1 s).
const STEP: Duration = Duration::from_secs(10);
/// A wakeup later than this counts as late (a lost wakeup shows up as its timeout).
const LATE: Duration = Duration::from_millis(500);

fn main() {
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(120));
        println!("watchdog: the run took more than 120 s");
        std::process::exit(2);
    });
    // First, while this thread is the only one that ever called into the library.
    for line in current_thread_wakes() {
        println!("current-thread runtime: {line}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a multi-threaded runtime");
    let handle = runtime.handle().clone();
    runtime.block_on(async {
        step("wake from plain threads", wake_from_threads()).await;
        step("wake a parked runtime", wake_parked(handle.clone())).await;
        step("channels across workers", channels()).await;
        step("spawn_blocking", blocking()).await;
        step("timers", timers()).await;
        step("tcp", tcp_echo()).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    println!("end");
}

/// A current-thread runtime: one thread alone waits in `epoll_wait` (no other thread ever
/// calls into the instance), and plain threads wake it through mio's `Waker` (an eventfd
/// write) -- each wakeup must arrive at once, round after round.
fn current_thread_wakes() -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let lines = runtime.block_on(async {
        match tokio::time::timeout(STEP * 3, wake_from_threads()).await {
            Ok(lines) => lines,
            Err(_) => vec!["timeout".to_string()],
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    lines
}

/// Run one step under its deadline and print its lines (or that it hung).
async fn step(name: &str, body: impl std::future::Future<Output = Vec<String>>) {
    match tokio::time::timeout(STEP, body).await {
        Ok(lines) => lines.iter().for_each(|l| println!("{name}: {l}")),
        Err(_) => println!("{name}: timeout"),
    }
}

/// Oneshot senders fired from threads outside the runtime while it sleeps in `epoll_wait`:
/// each wakeup must arrive at once, round after round (20 rounds, each at most 2 s).
async fn wake_from_threads() -> Vec<String> {
    let rounds = 20;
    let (mut on_time, mut late, mut lost) = (0, 0, 0);
    for _ in 0..rounds {
        let (tx, rx) = oneshot::channel::<u32>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            let _ = tx.send(7);
        });
        let start = Instant::now();
        match tokio::time::timeout(Duration::from_secs(2), rx).await {
            Ok(Ok(7)) if start.elapsed() < LATE => on_time += 1,
            Ok(Ok(_)) => late += 1,
            _ => lost += 1,
        }
        // Joined on this thread: it has sent (or given up) by now.
        let _ = t.join();
    }
    vec![format!(
        "{rounds} rounds: {on_time} on time, {late} late, {lost} lost"
    )]
}

/// Tasks spawned onto the runtime from a plain thread while every worker is parked.
async fn wake_parked(handle: tokio::runtime::Handle) -> Vec<String> {
    let done = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Duration>();
    let spawner = {
        let done = done.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(20));
                let tx = tx.clone();
                let done = done.clone();
                let spawned = Instant::now();
                handle.spawn(async move {
                    done.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(spawned.elapsed());
                });
            }
        })
    };
    let mut late = 0;
    let mut got = 0;
    while got < 10 {
        match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
            Ok(Some(d)) => {
                got += 1;
                if d >= LATE {
                    late += 1;
                }
            }
            _ => break,
        }
    }
    let _ = tokio::task::spawn_blocking(move || spawner.join()).await;
    vec![format!(
        "10 tasks spawned from outside: {} ran, {got} reported, {late} late",
        done.load(Ordering::SeqCst)
    )]
}

/// Messages between tasks on different workers: a ring of 8 tasks passing a counter.
async fn channels() -> Vec<String> {
    let n = 8;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<u64>(1)).unzip();
    let mut tasks = Vec::new();
    for (i, mut rx) in receivers.into_iter().enumerate() {
        let next = senders[(i + 1) % n].clone();
        tasks.push(tokio::spawn(async move {
            let mut passes = 0u64;
            while let Some(v) = rx.recv().await {
                passes += 1;
                if v == 0 {
                    let _ = next.send(0).await;
                    break;
                }
                if next.send(v - 1).await.is_err() {
                    break;
                }
            }
            passes
        }));
    }
    senders[0].send(4000).await.expect("the ring is open");
    drop(senders);
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("a ring task");
    }
    vec![format!(
        "a counter passed around a ring of {n} tasks: {total} passes"
    )]
}

/// Blocking jobs on the blocking pool, each result awaited by the runtime.
async fn blocking() -> Vec<String> {
    let jobs: Vec<_> = (0..16u64)
        .map(|i| {
            tokio::task::spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(10 + i % 4));
                (0..=1000 * i).sum::<u64>()
            })
        })
        .collect();
    let mut sums = Vec::new();
    for j in jobs {
        sums.push(j.await.expect("a blocking job"));
    }
    vec![format!(
        "16 jobs, sum of results {}",
        sums.iter().sum::<u64>()
    )]
}

/// Sleeps end in deadline order, a timeout fires, an interval ticks.
async fn timers() -> Vec<String> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let sleepers: Vec<_> = [30u64, 10, 50, 20, 40]
        .into_iter()
        .map(|ms| {
            let order = order.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                order.lock().expect("the order list").push(ms);
            })
        })
        .collect();
    for s in sleepers {
        s.await.expect("a sleeper");
    }
    let never = tokio::time::timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
    let mut interval = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..10 {
        interval.tick().await;
    }
    let order = order.lock().expect("the order list").clone();
    vec![
        format!("sleeps woke in order {order:?}"),
        format!("timeout on a pending future fired: {}", never.is_err()),
        "interval ticked 10 times".to_string(),
    ]
}

/// A TCP echo server on loopback and 32 concurrent clients, 64 KiB each.
async fn tcp_echo() -> Vec<String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("its address");
    let server = tokio::spawn(async move {
        for _ in 0..32 {
            let (mut sock, _) = listener.accept().await.expect("accept");
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let clients: Vec<_> = (0..32u8)
        .map(|i| {
            tokio::spawn(async move {
                let payload: Vec<u8> = (0..65536u32).map(|k| (k as u8) ^ i).collect();
                let sock = TcpStream::connect(addr).await.expect("connect");
                let (mut r, mut w) = sock.into_split();
                let writer = tokio::spawn(async move {
                    w.write_all(&payload).await.expect("write");
                    w.shutdown().await.expect("shutdown");
                    payload
                });
                let mut back = Vec::new();
                r.read_to_end(&mut back).await.expect("read");
                back == writer.await.expect("the writer")
            })
        })
        .collect();
    let mut right = 0;
    for c in clients {
        right += usize::from(c.await.expect("a client"));
    }
    server.await.expect("the server");
    vec![format!("32 clients echoed 64 KiB each: {right} right")]
}
