//! Reason codes: every refusal names one, on the wire (`reason_code`) and in the audit log.
//! They are part of the contract: the engine and operators match on them, so a code is
//! never renamed, only added.

/// Why the signer refused a request. `as_str` is the wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A field is missing or malformed (an amount that is not a base-10 integer, an address
    /// that is not 20 bytes, a fee that does not fit, priority fee above max fee, …).
    BadRequest,
    /// `from` is not an account of the policy.
    UnknownAccount,
    /// The chain id is not in the policy's `chain_ids`.
    ChainNotAllowed,
    /// `to` is not an executor, token or pool of the policy, nor the account itself.
    DestinationNotAllowed,
    /// The function is not one the policy allows at that destination.
    SelectorNotAllowed,
    /// The calldata does not decode as the function its selector names.
    BadCalldata,
    /// The call names a pool that is not in the policy.
    PoolNotAllowed,
    /// An ERC-20 approval to anyone but a policy executor.
    SpenderNotAllowed,
    /// Tokens would go to someone other than the account itself.
    RecipientNotAccount,
    /// Ether sent with a contract call (nothing stratbox calls is payable).
    ValueNotAllowed,
    /// A call whose outflow has no upper bound (an exact-output swap on a pool).
    UnboundedAmount,
    /// An outflow above the token's per-transaction cap.
    CapPerTx,
    /// An outflow that would take the account's rolling 24-hour total above the cap.
    CapDaily,
    /// `max_fee_per_gas` or `max_priority_fee_per_gas` above the policy's maximum.
    FeeTooHigh,
    /// `gas_limit` above the policy's maximum.
    GasLimitTooHigh,
    /// A different transaction at a nonce already signed (and not a permitted replacement).
    NonceReused,
    /// A nonce below the highest signed, never signed before (only a cancel may fill it).
    NonceTooLow,
    /// The task id was already used for different fields.
    TaskConflict,
    /// The request names an approval bound to other fields.
    ApprovalMismatch,
    /// The approval expired before it was decided.
    ApprovalExpired,
    /// An approver rejected it.
    ApprovalRejected,
    /// The key source could not sign.
    KeyUnavailable,
}

impl Reason {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "bad_request",
            Reason::UnknownAccount => "unknown_account",
            Reason::ChainNotAllowed => "chain_not_allowed",
            Reason::DestinationNotAllowed => "destination_not_allowed",
            Reason::SelectorNotAllowed => "selector_not_allowed",
            Reason::BadCalldata => "bad_calldata",
            Reason::PoolNotAllowed => "pool_not_allowed",
            Reason::SpenderNotAllowed => "spender_not_allowed",
            Reason::RecipientNotAccount => "recipient_not_account",
            Reason::ValueNotAllowed => "value_not_allowed",
            Reason::UnboundedAmount => "unbounded_amount",
            Reason::CapPerTx => "cap_per_tx",
            Reason::CapDaily => "cap_daily",
            Reason::FeeTooHigh => "fee_too_high",
            Reason::GasLimitTooHigh => "gas_limit_too_high",
            Reason::NonceReused => "nonce_reused",
            Reason::NonceTooLow => "nonce_too_low",
            Reason::TaskConflict => "task_conflict",
            Reason::ApprovalMismatch => "approval_mismatch",
            Reason::ApprovalExpired => "approval_expired",
            Reason::ApprovalRejected => "approval_rejected",
            Reason::KeyUnavailable => "key_unavailable",
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: &'static [Reason] = &[
        Reason::BadRequest,
        Reason::UnknownAccount,
        Reason::ChainNotAllowed,
        Reason::DestinationNotAllowed,
        Reason::SelectorNotAllowed,
        Reason::BadCalldata,
        Reason::PoolNotAllowed,
        Reason::SpenderNotAllowed,
        Reason::RecipientNotAccount,
        Reason::ValueNotAllowed,
        Reason::UnboundedAmount,
        Reason::CapPerTx,
        Reason::CapDaily,
        Reason::FeeTooHigh,
        Reason::GasLimitTooHigh,
        Reason::NonceReused,
        Reason::NonceTooLow,
        Reason::TaskConflict,
        Reason::ApprovalMismatch,
        Reason::ApprovalExpired,
        Reason::ApprovalRejected,
        Reason::KeyUnavailable,
    ];
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the code and a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub reason: Reason,
    /// What exactly was refused ("SBA 2000 over the per-transaction cap 1000").
    pub detail: String,
}

impl Refusal {
    /// A refusal with a detail.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}
