//! stratbox-proto (being built)
