//! stratbox-engine (being built)
