//! stratbox-feed (being built)
