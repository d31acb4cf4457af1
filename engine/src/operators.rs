//! Who may take operator actions over gRPC: engage or clear the kill switch, restore a
//! halted strategy.
//!
//! The engine's port is reachable from Zone A (hosts submit proposals on it), so a name in a
//! request proves nothing: an operator action must carry a credential that an
//! [`OperatorAuth`] turns into the operator's name, and that name, not anything the request
//! says, is what the audit log records. The engine does not hold operator keys itself; the
//! registry does (`stratbox_registry::auth::Operators`, keys from `stratbox operator add`),
//! and `stratbox engine` hands it to the service. An engine served without one refuses every
//! operator action over gRPC (`UNAUTHENTICATED`); in-process callers (`stratbox up`, tests)
//! call [`crate::Engine`] directly.

use std::future::Future;
use std::pin::Pin;

use tonic::Status;
use tonic::metadata::MetadataMap;

/// What [`OperatorAuth::authenticate`] returns: the operator's name, or why not.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<String, Status>> + Send + 'a>>;

/// Turns a request's metadata (e.g. `authorization: Bearer <key>`) into the name of the
/// operator it authenticates, or a `Status` (`UNAUTHENTICATED` for a missing or unknown
/// credential, `UNAVAILABLE` when the credential store cannot be read).
pub trait OperatorAuth: Send + Sync {
    fn authenticate<'a>(&'a self, metadata: &'a MetadataMap) -> AuthFuture<'a>;
}

/// The refusal of an operator action on an engine served without an [`OperatorAuth`].
pub fn no_operator_keys() -> Status {
    Status::unauthenticated(
        "operator actions need operator keys: start the engine with its registry",
    )
}
