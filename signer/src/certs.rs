//! A development CA and the certificates a signer deployment needs: the signer's server
//! certificate, the engine's client certificate, one per approver. Each client
//! certificate's SPKI fingerprint is what the signer's allowlist holds.
//!
//! For development and tests: the CA key sits in a file next to what it signed. A real
//! deployment issues these from its own PKI and only copies the fingerprints.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A generated certificate did not parse back (a bug).
    #[error("certificate does not parse: {0}")]
    Parse(String),
    /// A name that cannot be a file name.
    #[error("name {0:?}: use letters, digits, '-' and '_'")]
    BadName(String),
}

/// One certificate written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Its name ("signer", "engine", an approver's name).
    pub name: String,
    /// `server`, `engine` or `approver`.
    pub kind: String,
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
    /// SHA-256 of its SubjectPublicKeyInfo, hex.
    pub spki_sha256: String,
}

/// The development CA.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate (PEM).
    pub cert: PathBuf,
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = options.open(path).map_err(io)?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)
}

fn check_name(name: &str) -> Result<(), CertError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(CertError::BadName(name.to_owned()));
    }
    Ok(())
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "stratbox signer (development)");
    dn.push(DnType::CommonName, common_name);
    dn
}

impl DevCa {
    /// Makes a new CA and writes `ca.pem` and `ca.key` into `dir`.
    pub fn create(dir: &Path) -> Result<DevCa, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn("stratbox signer development CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        let cert_path = dir.join("ca.pem");
        write(&cert_path, &cert.pem(), false)?;
        write(&dir.join("ca.key"), &key.serialize_pem(), true)?;
        Ok(DevCa {
            issuer: Issuer::new(params, key),
            cert: cert_path,
        })
    }

    fn issue(
        &self,
        dir: &Path,
        name: &str,
        kind: &str,
        sans: Vec<String>,
        eku: ExtendedKeyUsagePurpose,
    ) -> Result<Issued, CertError> {
        check_name(name)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        let cert = params.signed_by(&key, &self.issuer)?;
        let fingerprint = crate::tls::spki_sha256(&CertificateDer::from(cert.der().to_vec()))
            .map_err(|e| CertError::Parse(e.to_string()))?;
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        write(&cert_path, &cert.pem(), false)?;
        write(&key_path, &key.serialize_pem(), true)?;
        Ok(Issued {
            name: name.to_owned(),
            kind: kind.to_owned(),
            cert: cert_path,
            key: key_path,
            spki_sha256: hex::encode(fingerprint),
        })
    }

    /// A server certificate for the signer, valid for `hosts` (DNS names or IP addresses).
    pub fn issue_server(
        &self,
        dir: &Path,
        name: &str,
        hosts: &[String],
    ) -> Result<Issued, CertError> {
        self.issue(
            dir,
            name,
            "server",
            hosts.to_vec(),
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate (engine or approver); only good for client authentication.
    pub fn issue_client(&self, dir: &Path, name: &str, kind: &str) -> Result<Issued, CertError> {
        self.issue(
            dir,
            name,
            kind,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }
}

/// The whole development set in `dir`: CA, `signer` (server, for `hosts`), `engine`, and one
/// per approver.
pub fn dev_set(
    dir: &Path,
    hosts: &[String],
    approvers: &[String],
) -> Result<Vec<Issued>, CertError> {
    let ca = DevCa::create(dir)?;
    let mut out = vec![
        ca.issue_server(dir, "signer", hosts)?,
        ca.issue_client(dir, "engine", "engine")?,
    ];
    for a in approvers {
        if a == "signer" || a == "engine" || a == "ca" {
            return Err(CertError::BadName(a.clone()));
        }
        out.push(ca.issue_client(dir, a, "approver")?);
    }
    Ok(out)
}

/// The allowlist entries for a config file, as TOML.
pub fn allowlist_toml(issued: &[Issued]) -> String {
    let mut out = String::new();
    for i in issued {
        match i.kind.as_str() {
            "engine" => out.push_str(&format!(
                "[[engine_clients]]\nname = \"{}\"\nspki_sha256 = \"{}\"\n\n",
                i.name, i.spki_sha256
            )),
            "approver" => out.push_str(&format!(
                "[[approvers]]\nname = \"{}\"\nrole = \"approver\"\nspki_sha256 = \"{}\"\n\n",
                i.name, i.spki_sha256
            )),
            _ => {}
        }
    }
    out
}
