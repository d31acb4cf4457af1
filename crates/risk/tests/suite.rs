//! Behaviour tests for stratbox-risk, one module per concept.

mod suite {
    pub mod common;
    pub mod config;
    pub mod gates;
    pub mod limits;
    pub mod oracle;
    pub mod permission;
    pub mod props;
}
