//! pipe (stub: implemented by the objects work).
