//! Linux-faithful in-process objects: pipe, eventfd, unix socket pairs, timerfd (with a
//! pluggable clock) and a non-pollable regular file. Each reproduces the poll mask and the
//! wakeups (which operations wake, with which key) of its Linux counterpart, because those
//! decide what epoll reports, edge-triggered mode above all.

pub mod clock;
pub mod eventfd;
pub mod pipe;
pub mod regular;
pub mod socket;
pub mod timerfd;
