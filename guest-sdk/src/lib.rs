//! stratbox-sdk (being built)
