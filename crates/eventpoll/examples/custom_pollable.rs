//! A pollable object of your own: a bounded job queue that an epoll instance can watch like
//! a pipe. It meets the engine's pollable contract ([`Pollable`]) in two steps:
//!
//! 1. `poll` reports the current readiness from the object's state: `IN` while a job is
//!    queued, `OUT` while there is room, `HUP` once the producer has closed it.
//! 2. Every state change wakes the object's [`WaitQueue`] *after* the change, with the bits
//!    that may have become true as the key (`IN` after a push, `OUT` after a pop) — the key
//!    is what lets an edge-triggered item, or an `EXCLUSIVE` one, decide whether to fire.
//!
//! A producer thread pushes jobs, waiting for `OUT` when the queue is full; a consumer
//! waits for `IN` and stops at `HUP`. Run: `cargo run -p eventpoll --example custom_pollable`
//! (it checks that every job arrives once, in order).

use eventpoll::{Epoll, EventBuffer, Events, File, Interest, Pollable, WaitQueue};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread;

/// A bounded queue of jobs, watchable by epoll.
struct JobQueue {
    state: Mutex<State>,
    queue: WaitQueue,
}

struct State {
    jobs: VecDeque<u64>,
    capacity: usize,
    closed: bool,
}

impl Pollable for JobQueue {
    fn poll(&self) -> Events {
        let s = self.state.lock().unwrap();
        let mut mask = Events::empty();
        if !s.jobs.is_empty() {
            mask |= Events::IN | Events::RDNORM;
        }
        if s.jobs.len() < s.capacity && !s.closed {
            mask |= Events::OUT | Events::WRNORM;
        }
        if s.closed {
            mask |= Events::HUP;
        }
        mask
    }

    fn wait_queue(&self) -> &WaitQueue {
        &self.queue
    }
}

impl JobQueue {
    fn new(capacity: usize) -> JobQueue {
        JobQueue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                capacity,
                closed: false,
            }),
            queue: WaitQueue::new(),
        }
    }

    /// Queue a job; `false` when full.
    fn push(&self, job: u64) -> bool {
        {
            let mut s = self.state.lock().unwrap();
            if s.jobs.len() == s.capacity {
                return false;
            }
            s.jobs.push_back(job);
        } // the state lock is released before the wakeup: the queue's callbacks poll us
        self.queue.wake(Events::IN | Events::RDNORM);
        true
    }

    /// Take the oldest job.
    fn pop(&self) -> Option<u64> {
        let job = self.state.lock().unwrap().jobs.pop_front()?;
        self.queue.wake(Events::OUT | Events::WRNORM);
        Some(job)
    }

    /// No more jobs: consumers see `HUP` once the queue is drained.
    fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.queue.wake(Events::HUP);
    }
}

const JOBS: u64 = 10_000;

fn main() {
    let jobs = Arc::new(JobQueue::new(16));
    // One open file description for the object: both sides watch it through it.
    let file = File::new(jobs.clone());

    let producer = {
        let (jobs, file) = (jobs.clone(), file.clone());
        thread::spawn(move || {
            let epoll = Epoll::new();
            // Edge-triggered: woken by each pop that makes room.
            epoll.add(&file, Interest::WRITABLE.edge(), 0).unwrap();
            let mut events = EventBuffer::with_capacity(1);
            let mut full_waits = 0;
            for job in 0..JOBS {
                while !jobs.push(job) {
                    full_waits += 1;
                    epoll.wait(&mut events, None).unwrap();
                }
            }
            jobs.close();
            full_waits
        })
    };

    let epoll = Epoll::new();
    epoll.add(&file, Interest::READABLE, 7).unwrap(); // level-triggered
    let mut events = EventBuffer::with_capacity(4);
    let mut next = 0;
    'consume: loop {
        epoll.wait(&mut events, None).unwrap();
        for ev in &events {
            assert_eq!(ev.data(), 7);
            while let Some(job) = jobs.pop() {
                assert_eq!(job, next, "jobs arrive once, in order");
                next += 1;
            }
            if ev.is_hangup() {
                // Closed when polled, so every job was queued before: all drained now.
                break 'consume;
            }
        }
    }
    let full_waits = producer.join().unwrap();
    assert_eq!(next, JOBS);
    println!("{JOBS} jobs through a queue of 16; the producer waited for room {full_waits} times");
}
