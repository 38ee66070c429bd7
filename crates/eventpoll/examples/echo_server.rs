//! An in-process echo server: one server thread multiplexes many unix socket pairs with one
//! epoll instance (edge-triggered, non-blocking ends); client threads send lines and check
//! the echoes; the main thread stops the server with a [`Waker`] once every client is done.
//!
//! Run: `cargo run -p eventpoll --example echo_server`. It checks what it prints: a wrong
//! echo or a lost connection panics.

use eventpoll::objects::socket::{socketpair, SocketType};
use eventpoll::{Epoll, Errno, EventBuffer, File, Interest, OpenFlags, Waker};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

const CLIENTS: usize = 8;
const LINES_PER_CLIENT: usize = 100;

/// The server: echo whatever arrives on each connection until its peer closes, and stop
/// once told to and every connection is gone; return how many bytes were echoed.
fn serve(epoll: Epoll, mut conns: HashMap<u64, File>, stop: Arc<AtomicBool>) -> usize {
    for (&id, conn) in &conns {
        // Edge-triggered: one report per wakeup, so each report drains the socket.
        let interest = (Interest::READABLE | Interest::READ_CLOSED).edge();
        epoll.add(conn, interest, id).expect("watch a connection");
    }
    let mut events = EventBuffer::with_capacity(64);
    let mut echoed = 0;
    let mut buf = [0u8; 4096];
    while !(stop.load(Ordering::Acquire) && conns.is_empty()) {
        // No timeout: new data or the stop waker ends the wait.
        epoll.wait(&mut events, None).expect("wait");
        for ev in &events {
            let id = ev.data();
            let Some(conn) = conns.get(&id) else { continue };
            let mut closed = ev.is_read_closed();
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        assert_eq!(conn.write(&buf[..n]), Ok(n), "echo fits the peer's buffer");
                        echoed += n;
                    }
                    Err(Errno::EAGAIN) => break, // drained: wait for the next edge
                    Err(e) => panic!("read on connection {id}: {e:?}"),
                }
            }
            if closed {
                // Dropping the last handle of the server end removes its item: no DEL needed.
                conns.remove(&id);
            }
        }
    }
    assert!(
        epoll.is_empty(),
        "every closed connection left the interest list"
    );
    echoed
}

/// A client: send numbered lines and read each echo back (blocking end).
fn client(id: usize, conn: File) -> usize {
    let mut sent = 0;
    for line in 0..LINES_PER_CLIENT {
        let msg = format!("client {id} line {line}\n");
        conn.write(msg.as_bytes()).expect("send");
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while got.len() < msg.len() {
            let n = conn.read(&mut buf).expect("receive");
            assert!(n > 0, "server closed connection {id} early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, msg.as_bytes(), "echo of client {id}");
        sent += msg.len();
    }
    sent // dropping `conn` closes it: the server sees the end of its stream
}

fn main() {
    let epoll = Epoll::new();
    let stop = Arc::new(AtomicBool::new(false));
    let waker: Waker = epoll.waker();

    let mut server_ends = HashMap::new();
    let mut client_ends = Vec::new();
    for id in 0..CLIENTS {
        let (server_end, client_end) = socketpair(SocketType::Stream, OpenFlags::NONBLOCK);
        // The client side blocks: clear its O_NONBLOCK.
        client_end.set_flags(client_end.flags() & !OpenFlags::NONBLOCK.bits());
        server_ends.insert(id as u64, server_end);
        client_ends.push(client_end);
    }

    let server = {
        let (epoll, stop) = (epoll.clone(), stop.clone());
        thread::spawn(move || serve(epoll, server_ends, stop))
    };
    let clients: Vec<_> = client_ends
        .into_iter()
        .enumerate()
        .map(|(id, conn)| thread::spawn(move || client(id, conn)))
        .collect();
    let sent: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();

    // Every echo is back and the clients have closed their ends. The server may already be
    // asleep with nothing left to watch: stop it from this thread.
    stop.store(true, Ordering::Release);
    waker.wake();
    let echoed = server.join().unwrap();

    assert_eq!(echoed, sent);
    println!("{CLIENTS} clients, {LINES_PER_CLIENT} lines each: {echoed} bytes echoed");
}
