//! stratbox-host (being built)
