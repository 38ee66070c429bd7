//! A regular file: not pollable (stub: implemented by the objects work).
