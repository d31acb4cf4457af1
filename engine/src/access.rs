//! Who may do what over gRPC.
//!
//! The engine's port is reachable from Zone A (hosts submit proposals on it), so a name in a
//! request proves nothing: every call that changes something carries a credential
//! (`authorization: Bearer <key>`) that an [`Access`] turns into a principal's name for the
//! [`Role`] the call needs, and that name, not anything the request says, is what the audit
//! log records.
//!
//! Three roles, and a key grants exactly one of them:
//! - **operators** (keys from `stratbox operator add`): the kill switch, restoring a halted
//!   strategy, and the registry's uploads and deployments;
//! - **hosts** (keys from `stratbox host-key add`): submitting proposals and the registry's
//!   host calls (watching deployments, fetching components, reporting rollouts). A host key
//!   grants nothing an operator key grants, so a compromised host cannot clear the kill
//!   switch or deploy code;
//! - **feeders** (keys from `stratbox feeder-key add`): pushing off-chain reference prices
//!   (`PushReferencePrice`), one of the oracle guard's sources. A feeder key grants nothing
//!   else, and neither other key may push a price.
//!
//! The engine does not hold keys itself; the registry does (`stratbox_registry::auth`), and
//! `stratbox engine` hands it to the service. An engine served without an [`Access`] (an
//! in-process engine: `stratbox up`, tests) refuses every operator action and lets any
//! caller submit, since only its own process can reach it.

use std::future::Future;
use std::pin::Pin;

use tonic::Status;
use tonic::metadata::MetadataMap;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A person running the engine and registry (deploys, kill switch, approvals).
    Operator,
    /// A strategy host: submits proposals and reports rollouts.
    Host,
    /// A price feeder: pushes off-chain reference prices.
    Feeder,
}

impl Role {
    /// The stored form (`operators.role`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Host => "host",
            Role::Feeder => "feeder",
        }
    }

    /// The inverse of [`Role::as_str`]; `None` for an unknown stored role.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "host" => Some(Role::Host),
            "feeder" => Some(Role::Feeder),
            _ => None,
        }
    }
}

/// What [`Access::authenticate`] returns: the principal's name, or why not.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<String, Status>> + Send + 'a>>;

/// Turns a request's metadata into the name of the principal it authenticates in `role`,
/// or a `Status`: `UNAUTHENTICATED` for a missing, unknown or revoked credential,
/// `PERMISSION_DENIED` for a valid key of the other role, `UNAVAILABLE` when the credential
/// store cannot be read.
pub trait Access: Send + Sync {
    /// Authenticates a request for `role`; see the trait's doc for the statuses.
    fn authenticate<'a>(&'a self, metadata: &'a MetadataMap, role: Role) -> AuthFuture<'a>;
}

/// The refusal of an operator action on an engine served without an [`Access`].
pub fn no_operator_keys() -> Status {
    Status::unauthenticated(
        "operator actions need operator keys: start the engine with its registry",
    )
}
