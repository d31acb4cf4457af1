//! hostile (being built)
