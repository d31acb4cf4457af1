//! Human-readable reasons for reverts and halts, so a refused trade says why.

use alloy_primitives::hex;

/// `Error(string)`, `Panic(uint256)` or raw data, as text.
pub(crate) fn reason(output: &[u8]) -> String {
    if output.is_empty() {
        return "reverted without reason".to_owned();
    }
    match alloy_sol_types::decode_revert_reason(output) {
        // alloy prefixes `Error(string)` reasons with "revert: "; the reason is the contract's.
        Some(reason) => match reason.strip_prefix("revert: ") {
            Some(stripped) => stripped.to_owned(),
            None => reason,
        },
        None => format!("reverted with data 0x{}", hex::encode(output)),
    }
}
