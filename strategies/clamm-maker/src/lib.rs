//! clamm-maker (being built)
