//! momentum (being built)
