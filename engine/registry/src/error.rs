//! What can go wrong in the registry, and how each maps onto a gRPC status.

use stratbox_component::CheckError;

/// Why an upload was refused. The text is what the operator sees: one line, actionable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The file is not a strategy component (see [`CheckError`]).
    #[error("{0}")]
    Check(#[from] CheckError),
    /// The compiler refused it; the text is the compiler's last stderr line.
    #[error("compile failed: {0}")]
    Compile(String),
    /// Compiling ran past the limit (a compile bomb?) and was killed.
    #[error("compile did not finish within {0:?} and was stopped")]
    CompileTimeout(std::time::Duration),
}

impl Refusal {
    /// Short machine-readable kind, for logs and audit details.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Check(c) => c.kind(),
            Refusal::Compile(_) => "compile_failed",
            Refusal::CompileTimeout(_) => "compile_timeout",
        }
    }
}

/// Why a registry call failed; each variant maps onto one gRPC status code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The upload itself is at fault (`INVALID_ARGUMENT`); retrying it will not help.
    #[error("upload refused: {0}")]
    Refused(#[from] Refusal),
    /// A malformed request, e.g. a bad name or version (`INVALID_ARGUMENT`).
    #[error("{0}")]
    Invalid(String),
    /// No such strategy, version or deployment (`NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// A rollback with nothing before the current deployment, and the like.
    #[error("{0}")]
    Precondition(String),
    /// No key, or a key the registry does not know (`UNAUTHENTICATED`).
    #[error("missing credentials: {0}")]
    Unauthenticated(String),
    /// A valid key of the wrong role.
    #[error("{0}")]
    PermissionDenied(String),
    /// The database failed; an internal error, not the caller's.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored row does not decode (hand-edited or from a newer schema).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The compiler could not be run at all (not the component's fault).
    #[error("compiler unavailable: {0}")]
    Compiler(String),
}

impl From<RegistryError> for tonic::Status {
    fn from(e: RegistryError) -> Self {
        match &e {
            RegistryError::Refused(_) | RegistryError::Invalid(_) => {
                tonic::Status::invalid_argument(e.to_string())
            }
            RegistryError::NotFound(_) => tonic::Status::not_found(e.to_string()),
            RegistryError::Precondition(_) => tonic::Status::failed_precondition(e.to_string()),
            RegistryError::Unauthenticated(_) => tonic::Status::unauthenticated(e.to_string()),
            RegistryError::PermissionDenied(_) => tonic::Status::permission_denied(e.to_string()),
            RegistryError::Db(_) | RegistryError::Corrupt(_) | RegistryError::Compiler(_) => {
                tracing::error!(error = %e, "registry error");
                tonic::Status::unavailable(e.to_string())
            }
        }
    }
}
