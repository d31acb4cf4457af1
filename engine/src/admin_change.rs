//! The kinds of admin change the governance sentinel ([`crate::sentinel`]) reports: the
//! names its halts, audit rows and the `governance_hits` metric's `kind` label use. A leaf
//! module, so the metrics can list them without depending on the sentinel.

/// Every kind of hit, as halts, audit rows and the metric's `kind` label name them: the
/// events, then the readings.
pub const KINDS: [&str; 12] = [
    "SetFeeProtocol",
    "OwnerChanged",
    "FeeAmountEnabled",
    "OwnershipTransferred",
    "Paused",
    "Upgraded",
    "AdminChanged",
    "BeaconUpgraded",
    "implementation_slot",
    "admin_slot",
    "beacon_slot",
    "code_hash",
];

/// The metric label of a stored kind (`other` for one this build does not know).
pub fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("other")
}
