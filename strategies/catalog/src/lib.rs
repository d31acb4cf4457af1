//! stratbox-strategies (being built)
