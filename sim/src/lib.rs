//! stratbox-sim (being built)
