//! unix socket pairs (stub: implemented by the objects work).
