//! How a CLI command or a strategy host reaches the engine's gRPC port: over TLS, verifying
//! the engine's certificate against `--engine-ca` (and presenting a client certificate when
//! the engine requires one), or in plain TCP to a loopback address only. Operator and host
//! keys travel in every call's metadata, so a connection that is neither verified nor local
//! is refused before it is made.
//!
//! The client side of the signer's TLS machinery ([`stratbox_signer::tls::client_tls`]) is
//! reused as is: one way to build a verifying tonic client in the workspace.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tonic::transport::Endpoint;

/// The flags that say how to verify the engine.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct EngineTls {
    /// The CA that issued the engine's TLS certificate (PEM). With it the engine is reached
    /// over TLS (`--engine https://...`) and its certificate verified; without it only a
    /// plain `http://` loopback address is accepted.
    #[arg(long, env = "STRATBOX_ENGINE_CA")]
    pub engine_ca: Option<PathBuf>,
    /// A client certificate (PEM) for an engine that requires one (`--tls-client-ca`).
    #[arg(long, requires_all = ["engine_ca", "engine_key"], env = "STRATBOX_ENGINE_CERT")]
    pub engine_cert: Option<PathBuf>,
    /// The private key of `--engine-cert` (PEM).
    #[arg(long, requires = "engine_cert", env = "STRATBOX_ENGINE_KEY")]
    pub engine_key: Option<PathBuf>,
    /// The name the engine's certificate is checked against (default: the host of the
    /// `--engine` address).
    #[arg(long)]
    pub engine_server_name: Option<String>,
}

/// Whether `host` (an address's host part) names this machine: an IP loopback or
/// `localhost`.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl EngineTls {
    /// The endpoint for `url`, with TLS set up when the address is `https://`. Refuses an
    /// `https://` address without a CA, a CA with an `http://` address (tonic would then
    /// silently speak plain TCP), and plain TCP to anything but this machine.
    pub fn endpoint(&self, url: &str) -> anyhow::Result<Endpoint> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("engine address {url:?}"))?;
        let host = endpoint.uri().host().unwrap_or_default().to_owned();
        match (endpoint.uri().scheme_str(), &self.engine_ca) {
            (Some("https"), Some(ca)) => {
                let identity = self.engine_cert.as_deref().zip(self.engine_key.as_deref());
                let name = self.engine_server_name.as_deref().unwrap_or(&host);
                let bare = name.trim_start_matches('[').trim_end_matches(']');
                let tls = stratbox_signer::tls::client_tls(ca, identity, bare)
                    .context("the engine's TLS settings")?;
                endpoint
                    .tls_config(tls)
                    .with_context(|| format!("TLS to the engine at {url}"))
            }
            (Some("https"), None) => {
                bail!(
                    "{url} is a TLS address: give --engine-ca (the CA of the engine's certificate)"
                )
            }
            (Some("http"), Some(_)) => bail!(
                "--engine-ca is given but {url} is plain http://: use https:// so the engine is verified"
            ),
            (Some("http"), None) if is_loopback(&host) => Ok(endpoint),
            (Some("http"), None) => bail!(
                "refusing plain TCP to {url}: keys would cross the network in clear; use https:// with --engine-ca (plain http:// is for loopback addresses only)"
            ),
            (other, _) => bail!(
                "engine address {url}: scheme {} (use https://, or http:// on loopback)",
                other.unwrap_or("missing")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tcp_only_to_this_machine() {
        let none = EngineTls::default();
        for ok in [
            "http://127.0.0.1:50051",
            "http://localhost:50051",
            "http://[::1]:50051",
        ] {
            assert!(none.endpoint(ok).is_ok(), "{ok}");
        }
        for refused in ["http://engine:50051", "http://10.0.0.5:50051"] {
            let e = format!("{:#}", none.endpoint(refused).expect_err(refused));
            assert!(e.contains("refusing plain TCP"), "{e}");
        }
        let e = format!(
            "{:#}",
            none.endpoint("https://engine:50051").expect_err("no CA")
        );
        assert!(e.contains("--engine-ca"), "{e}");
        let with_ca = EngineTls {
            engine_ca: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..EngineTls::default()
        };
        let e = format!(
            "{:#}",
            with_ca
                .endpoint("http://127.0.0.1:50051")
                .expect_err("http with a CA")
        );
        assert!(e.contains("use https://"), "{e}");
        let e = format!(
            "{:#}",
            with_ca
                .endpoint("https://127.0.0.1:50051")
                .expect_err("missing CA file")
        );
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
