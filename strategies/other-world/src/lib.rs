//! other-world (being built)
