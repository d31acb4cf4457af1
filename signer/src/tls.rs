//! Mutual TLS, TLS 1.3 only (rustls with ring). A client is accepted only if its certificate
//! chains to the signer's client CA *and* the SHA-256 of its SubjectPublicKeyInfo is on the
//! listener's allowlist; anything else is refused inside the handshake, before a single
//! gRPC byte is read. The engine's port and the approvers' port have separate allowlists,
//! so an engine certificate cannot reach the admin port nor an approver's the signing one.
//!
//! Pinning the SPKI and not only the CA means a CA that signs one certificate too many
//! (or a leaked CA key) does not let a new client in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use sha2::{Digest, Sha256};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Rustls(String),
    /// An allowlist entry is not 64 hex digits.
    #[error("allowlist entry {0:?} is not a sha256 (64 hex digits)")]
    BadFingerprint(String),
}

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The engine: may ask for signatures.
    Engine,
    /// May list, show, approve and reject approvals and reload the policy.
    Approver,
    /// May list and show approvals and the policy, nothing else.
    Viewer,
}

/// An allowlisted client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its name in the signer's config, used in the audit log.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// SPKI fingerprints allowed on one listener.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    peers: HashMap<[u8; 32], Peer>,
}

/// Parses 64 hex digits (a `sha256:` prefix and colons are accepted).
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], TlsError> {
    let clean: String = s
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    hex::decode(&clean)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| TlsError::BadFingerprint(s.to_owned()))
}

impl Allowlist {
    /// Adds a client.
    pub fn insert(&mut self, fingerprint: [u8; 32], peer: Peer) {
        self.peers.insert(fingerprint, peer);
    }

    /// The client with this fingerprint.
    pub fn get(&self, fingerprint: &[u8; 32]) -> Option<&Peer> {
        self.peers.get(fingerprint)
    }

    /// The client presenting this certificate.
    pub fn peer_of(&self, cert: &CertificateDer<'_>) -> Option<&Peer> {
        spki_sha256(cert).ok().and_then(|f| self.get(&f))
    }
}

/// SHA-256 of a certificate's DER SubjectPublicKeyInfo: the fingerprint allowlists hold.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Result<[u8; 32], webpki::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)?;
    Ok(Sha256::digest(ee.subject_public_key_info().as_ref()).into())
}

/// A handshake refusal, reported to whoever audits them.
#[derive(Debug, Clone)]
pub struct HandshakeRefusal {
    /// The listener ("signer" or "admin").
    pub listener: &'static str,
    /// The certificate's SPKI fingerprint (hex), or what made it unreadable.
    pub fingerprint: String,
    /// Why.
    pub why: String,
}

/// The CA check (rustls' WebPKI verifier) followed by the allowlist check.
#[derive(Debug)]
struct AllowlistVerifier {
    ca: Arc<dyn ClientCertVerifier>,
    allow: Arc<Allowlist>,
    listener: &'static str,
    refused: Option<tokio::sync::mpsc::Sender<HandshakeRefusal>>,
}

impl AllowlistVerifier {
    fn report(&self, fingerprint: String, why: String) {
        tracing::warn!(listener = self.listener, %fingerprint, %why, "client certificate refused in the handshake");
        if let Some(tx) = &self.refused {
            // Never block the handshake on the audit writer; a full queue drops the report
            // (the warning above is still logged).
            let _ = tx.try_send(HandshakeRefusal {
                listener: self.listener,
                fingerprint,
                why,
            });
        }
    }
}

impl ClientCertVerifier for AllowlistVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fingerprint = spki_sha256(end_entity)
            .map(hex::encode)
            .unwrap_or_else(|e| format!("unreadable certificate: {e}"));
        if let Err(e) = self.ca.verify_client_cert(end_entity, intermediates, now) {
            self.report(fingerprint, format!("not issued by the client CA: {e}"));
            return Err(e);
        }
        if self.allow.peer_of(end_entity).is_none() {
            self.report(fingerprint, "not on the allowlist".into());
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ca.supported_verify_schemes()
    }
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err(path, e))
}

/// The files a listener serves with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The signer's certificate chain (PEM).
    pub cert: std::path::PathBuf,
    /// Its key (PEM).
    pub key: std::path::PathBuf,
    /// The CA that issues client certificates (PEM).
    pub client_ca: std::path::PathBuf,
}

/// A TLS 1.3 server config that demands a client certificate from `client_ca` whose SPKI is
/// in `allow`. Refusals are sent to `refused` (best effort).
pub fn server_config(
    files: &TlsFiles,
    allow: Arc<Allowlist>,
    listener: &'static str,
    refused: Option<tokio::sync::mpsc::Sender<HandshakeRefusal>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    // ring, as the rest of the workspace's TLS (tonic's `tls-ring`) uses. rustls marks it
    // deprecated because ring offers no post-quantum key exchange; aws-lc-rs would, at the
    // cost of a C/cmake build on every machine.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.client_ca)? {
        roots.add(ca).map_err(|e| pem_err(&files.client_ca, e))?;
    }
    let ca = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let verifier = Arc::new(AllowlistVerifier {
        ca,
        allow,
        listener,
        refused,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&files.cert)?, read_key(&files.key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client's TLS settings for tonic: trust `ca` for the server, present `cert`/`key`.
pub fn client_tls(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    domain: &str,
) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| pem_err(p, e));
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?))
        .domain_name(domain.to_owned());
    if let Some((cert, key)) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        ));
    }
    Ok(tls)
}
