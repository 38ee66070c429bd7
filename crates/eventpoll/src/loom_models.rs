//! loom models of the wait/wake protocol (filled in by the concurrency work).
