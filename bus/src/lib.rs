//! stratbox-bus (being built)
