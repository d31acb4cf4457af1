//! The host's key on every call it makes to the engine and the registry.
//!
//! A host authenticates with its own key (`stratbox host-key add`), which lets it submit
//! proposals, follow deployments and report rollouts, and nothing an operator may do. The
//! key rides in `authorization: Bearer <key>` on every request of the channel; it is never
//! logged (`Debug` hides it).

use tonic::metadata::{Ascii, MetadataValue};

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An empty key would send no credentials at all.
    #[error("the host key is empty")]
    Empty,
    /// gRPC metadata values must be visible ASCII.
    #[error("the host key has characters an HTTP header cannot carry")]
    NotAscii,
    /// The key file could not be read.
    #[error("reading the host key from {path}: {error}")]
    Read {
        /// The key file.
        path: String,
        /// The I/O error.
        error: String,
    },
}

/// A host key for outgoing calls, or none (an engine served without keys: `stratbox up`).
#[derive(Clone, Default)]
pub struct HostKey(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "HostKey(<redacted>)"
        } else {
            "HostKey(none)"
        })
    }
}

impl HostKey {
    /// No key.
    pub fn none() -> HostKey {
        HostKey(None)
    }

    /// The key text as `stratbox host-key add` printed it (surrounding whitespace ignored).
    pub fn new(key: &str) -> Result<HostKey, KeyError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut value: MetadataValue<Ascii> = format!("Bearer {key}")
            .parse()
            .map_err(|_| KeyError::NotAscii)?;
        value.set_sensitive(true);
        Ok(HostKey(Some(value)))
    }

    /// Reads the key from a file (a mounted secret).
    pub fn from_file(path: &std::path::Path) -> Result<HostKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        HostKey::new(&text)
    }
}

impl tonic::service::Interceptor for HostKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn adds_the_key_and_hides_it() {
        let mut key = HostKey::new(" abc123\n").expect("key");
        let r = key.call(tonic::Request::new(())).expect("request");
        assert_eq!(
            r.metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer abc123")
        );
        assert!(!format!("{key:?}").contains("abc123"));
        let mut none = HostKey::none();
        let r = none.call(tonic::Request::new(())).expect("request");
        assert!(r.metadata().get("authorization").is_none());
        assert!(matches!(HostKey::new("  "), Err(KeyError::Empty)));
        assert!(matches!(HostKey::new("k\u{1}y"), Err(KeyError::NotAscii)));
    }
}
