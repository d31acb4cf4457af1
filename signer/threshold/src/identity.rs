//! Who is who in Zone C: the TLS identities of the three share processes and the coordinator,
//! and the cluster file that pins them.
//!
//! Every identity is a self-signed certificate (ECDSA P-256, made here with `rcgen`) whose
//! only name is its role: `stratbox-share-0`, `-1`, `-2`, `stratbox-coordinator`. There is no
//! certificate authority whose key could mint a fifth member: the cluster file lists the four
//! certificates themselves, and each side trusts exactly those (a pinned certificate is its
//! own trust anchor). A share process accepts TLS clients holding the coordinator's or a
//! peer share's certificate and no one else; the coordinator and the shares check a share's
//! server certificate against the one pinned for that index and its name.
//!
//! Private keys of these identities are TLS keys, not key shares; they are written owner-only
//! (0600) and are what an operator rotates by issuing a new cluster file.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ThresholdError;
use crate::sealed::write_private_atomically;

/// Number of share processes: the key is 2-of-3.
pub const SHARES: u16 = 3;
/// Shares needed to sign.
pub const THRESHOLD: u16 = 2;

/// The certificate name of share `index`.
pub fn share_name(index: u16) -> String {
    format!("stratbox-share-{index}")
}

/// The certificate name of the coordinator (the signer service).
pub const COORDINATOR_NAME: &str = "stratbox-coordinator";

/// A TLS identity: certificate and private key, PEM.
#[derive(Clone)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert_pem: String,
    key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh self-signed identity named `name`, usable as TLS server and client.
    pub fn generate(name: &str) -> Result<Self, ThresholdError> {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
            .map_err(|e| ThresholdError::Tls(format!("certificate parameters: {e}")))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate()
            .map_err(|e| ThresholdError::Tls(format!("key generation: {e}")))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| ThresholdError::Tls(format!("self-signing: {e}")))?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Reads a certificate and its key from PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, ThresholdError> {
        let cert_pem = std::fs::read_to_string(cert).map_err(|e| ThresholdError::io(cert, e))?;
        let key_pem =
            Zeroizing::new(std::fs::read_to_string(key).map_err(|e| ThresholdError::io(key, e))?);
        cert_der(&cert_pem, &cert.display().to_string())?;
        Ok(Identity { cert_pem, key_pem })
    }

    /// Writes the certificate (0644) and the key (0600).
    pub fn write(&self, cert: &Path, key: &Path) -> Result<(), ThresholdError> {
        std::fs::write(cert, &self.cert_pem).map_err(|e| ThresholdError::io(cert, e))?;
        write_private_atomically(key, self.key_pem.as_bytes())
    }

    /// The private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub(crate) fn tonic(&self) -> tonic::transport::Identity {
        tonic::transport::Identity::from_pem(&self.cert_pem, self.key_pem.as_bytes())
    }
}

/// The DER of the first certificate in `pem`.
pub(crate) fn cert_der(pem: &str, what: &str) -> Result<CertificateDer<'static>, ThresholdError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| ThresholdError::Tls(format!("{what}: not a PEM certificate: {e}")))
}

/// One share process in the cluster file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareEntry {
    /// Keygen index, 0..3.
    pub index: u16,
    /// Where the coordinator and the other shares reach it, `host:port`: an IP address, or a
    /// name the network resolves (a compose service, a Kubernetes service).
    pub address: String,
    /// Its certificate, PEM.
    pub cert_pem: String,
}

/// The cluster file: the three share processes (address and pinned certificate) and the
/// coordinator's pinned certificate. Every process of Zone C's key reads the same file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    /// Exactly three, indices 0, 1, 2 in order.
    pub shares: Vec<ShareEntry>,
    /// The coordinator's certificate, PEM.
    pub coordinator_cert_pem: String,
}

impl Cluster {
    /// Reads and checks a cluster file.
    pub fn load(path: &Path) -> Result<Self, ThresholdError> {
        let text = std::fs::read_to_string(path).map_err(|e| ThresholdError::io(path, e))?;
        let cluster: Cluster = serde_json::from_str(&text)
            .map_err(|e| ThresholdError::format(path.display().to_string(), e))?;
        cluster.check()?;
        Ok(cluster)
    }

    /// Writes the cluster file (it holds only public data).
    pub fn save(&self, path: &Path) -> Result<(), ThresholdError> {
        self.check()?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| ThresholdError::format("cluster file", e))?;
        std::fs::write(path, text).map_err(|e| ThresholdError::io(path, e))
    }

    fn check(&self) -> Result<(), ThresholdError> {
        if self.shares.len() != usize::from(SHARES) {
            return Err(ThresholdError::Config(format!(
                "the cluster lists {} shares; a 2-of-3 key needs exactly 3",
                self.shares.len()
            )));
        }
        for (position, share) in self.shares.iter().enumerate() {
            check_address(&share.address, share.index)?;
            if usize::from(share.index) != position {
                return Err(ThresholdError::Config(format!(
                    "share at position {position} has index {}; list them as 0, 1, 2",
                    share.index
                )));
            }
        }
        let mut ders = Vec::new();
        for share in &self.shares {
            ders.push(cert_der(
                &share.cert_pem,
                &format!("share {} certificate", share.index),
            )?);
        }
        ders.push(cert_der(
            &self.coordinator_cert_pem,
            "coordinator certificate",
        )?);
        for i in 0..ders.len() {
            for j in i + 1..ders.len() {
                if ders[i] == ders[j] {
                    return Err(ThresholdError::Config(
                        "two members of the cluster have the same certificate".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Share `index`'s entry.
    pub fn share(&self, index: u16) -> Result<&ShareEntry, ThresholdError> {
        self.shares.get(usize::from(index)).ok_or_else(|| {
            ThresholdError::Config(format!("no share {index} in the cluster (0, 1, 2)"))
        })
    }
}

/// A share's address must be `host:port` with a port number and no scheme: it is put after
/// `https://` to connect, and read as a port to listen on.
fn check_address(address: &str, index: u16) -> Result<(), ThresholdError> {
    let bad = |why: &str| {
        Err(ThresholdError::Config(format!(
            "share {index} address {address:?}: {why} (expected host:port)"
        )))
    };
    if address.contains("://") || address.contains('/') {
        return bad("no scheme or path");
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return bad("no port");
    };
    if host.is_empty() {
        return bad("no host");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => bad("the port is not a number from 1 to 65535"),
        Ok(_) => Ok(()),
    }
}

/// What [`init_cluster`] wrote.
#[derive(Debug, Clone)]
pub struct ClusterFiles {
    /// `cluster.json`.
    pub cluster: PathBuf,
    /// `share-I.crt.pem` and `share-I.key.pem` for I = 0, 1, 2.
    pub shares: Vec<(PathBuf, PathBuf)>,
    /// `coordinator.crt.pem` and `coordinator.key.pem`.
    pub coordinator: (PathBuf, PathBuf),
}

/// Makes the four TLS identities and the cluster file in `dir`, for a cluster whose shares
/// listen on `addresses`. Convenient for one operator setting up a test or staging cluster;
/// in production each machine runs [`Identity::generate`] itself and only certificates travel.
pub fn init_cluster(dir: &Path, addresses: [String; 3]) -> Result<ClusterFiles, ThresholdError> {
    std::fs::create_dir_all(dir).map_err(|e| ThresholdError::io(dir, e))?;
    let mut shares = Vec::new();
    let mut entries = Vec::new();
    for (index, address) in (0..SHARES).zip(addresses) {
        let identity = Identity::generate(&share_name(index))?;
        let cert = dir.join(format!("share-{index}.crt.pem"));
        let key = dir.join(format!("share-{index}.key.pem"));
        identity.write(&cert, &key)?;
        entries.push(ShareEntry {
            index,
            address,
            cert_pem: identity.cert_pem.clone(),
        });
        shares.push((cert, key));
    }
    let coordinator = Identity::generate(COORDINATOR_NAME)?;
    let cert = dir.join("coordinator.crt.pem");
    let key = dir.join("coordinator.key.pem");
    coordinator.write(&cert, &key)?;
    let cluster = Cluster {
        shares: entries,
        coordinator_cert_pem: coordinator.cert_pem.clone(),
    };
    let path = dir.join("cluster.json");
    cluster.save(&path)?;
    Ok(ClusterFiles {
        cluster: path,
        shares,
        coordinator: (cert, key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_round_trips_and_refuses_bad_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let addrs = [
            "127.0.0.1:1".to_string(),
            "127.0.0.1:2".to_string(),
            "signer-share-2:50070".to_string(),
        ];
        let files = init_cluster(dir.path(), addrs.clone()).unwrap();
        let cluster = Cluster::load(&files.cluster).unwrap();
        assert_eq!(cluster.share(2).unwrap().address, addrs[2]);
        Identity::load(&files.shares[1].0, &files.shares[1].1).unwrap();

        let mut twice = cluster.clone();
        twice.shares[1].cert_pem = twice.shares[0].cert_pem.clone();
        assert!(matches!(
            twice.save(&files.cluster),
            Err(ThresholdError::Config(_))
        ));
        let mut short = cluster.clone();
        short.shares.pop();
        assert!(matches!(
            short.save(&files.cluster),
            Err(ThresholdError::Config(_))
        ));
        for bad in ["127.0.0.1", "https://a:1", ":5", "a:0", "a:http"] {
            let mut wrong = cluster.clone();
            wrong.shares[0].address = bad.to_string();
            assert!(
                matches!(wrong.save(&files.cluster), Err(ThresholdError::Config(_))),
                "{bad}"
            );
        }
        let mut swapped = cluster;
        swapped.shares.swap(0, 1);
        assert!(matches!(
            swapped.save(&files.cluster),
            Err(ThresholdError::Config(_))
        ));
    }
}
