//! The engine's gRPC port over TLS, as processes: `stratbox engine --tls-cert --tls-key`
//! answers a CLI that trusts its CA (`--engine-ca`), grpcurl with `-cacert`, and refuses a
//! CLI trusting another CA, a plain-TCP client, and (with `--tls-client-ca`) a client
//! without a certificate of that CA. An engine asked to serve plain TCP on an address other
//! machines can reach refuses to start. Certificates are made with the signer's development
//! CA (`stratbox_signer::certs`), the one certificate machinery of the workspace.

use std::path::{Path, PathBuf};
use std::process::Output;

use stratbox_signer::certs::DevCa;

use crate::support::{self, Proc};

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA in `dir` with a server certificate for 127.0.0.1/localhost and a client one.
fn pki(dir: &Path) -> Pki {
    let ca = DevCa::create(dir).expect("dev CA");
    let hosts = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let server = ca.issue_server(dir, "engine", &hosts).expect("server cert");
    let client = ca
        .issue_client(dir, "host-1", "approver")
        .expect("client cert");
    Pki {
        ca: ca.cert.clone(),
        server_cert: server.cert,
        server_key: server.key,
        client_cert: client.cert,
        client_key: client.key,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A TLS engine on a free loopback port (`client_ca`: require client certificates).
fn tls_engine(dir: &Path, pki: &Pki, client_ca: bool) -> (Proc, String) {
    let mut args = vec![
        "engine",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        path(&pki.server_cert),
        "--tls-key",
        path(&pki.server_key),
    ];
    if client_ca {
        args.extend(["--tls-client-ca", path(&pki.ca)]);
    }
    let (proc, stdout) = Proc::spawn(&args, dir);
    let addr = support::listening_address(stdout);
    (proc, addr)
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out: Output = support::stratbox().args(args).output().expect("stratbox");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_tls_engine_answers_only_clients_that_verify_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = pki(&dir.path().join("good"));
    let other = pki(&dir.path().join("other"));
    let (mut engine, addr) = tls_engine(dir.path(), &good, false);
    let tls_url = format!("https://{addr}");

    // The right CA: the call is answered.
    let (ok, out, err) = cli(&[
        "kill-switch",
        "show",
        "--engine",
        &tls_url,
        "--engine-ca",
        path(&good.ca),
    ]);
    assert!(ok, "kill-switch show over TLS: {err}");
    assert!(out.contains("kill switch off"), "{out}");
    let (ok, out, err) = cli(&[
        "health",
        "--engine",
        &tls_url,
        "--engine-ca",
        path(&good.ca),
    ]);
    assert!(ok && out.trim() == "SERVING", "health over TLS: {out}{err}");

    // Another CA: refused in the handshake, and the error says why.
    let (ok, _, err) = cli(&[
        "kill-switch",
        "show",
        "--engine",
        &tls_url,
        "--engine-ca",
        path(&other.ca),
    ]);
    assert!(!ok, "a CLI trusting another CA was answered");
    assert!(
        err.contains("connecting to the engine") && err.contains("invalid peer certificate"),
        "the refusal names the certificate problem: {err}"
    );

    // Plain TCP to the TLS port: no answer.
    let (ok, _, err) = cli(&["kill-switch", "show", "--engine", &format!("http://{addr}")]);
    assert!(!ok, "a plain-TCP client was answered by the TLS port");
    assert!(err.contains("error:"), "{err}");

    // A TLS address without a CA, and a CA with a plain address, are refused before
    // connecting.
    let (ok, _, err) = cli(&["kill-switch", "show", "--engine", &tls_url]);
    assert!(!ok && err.contains("--engine-ca"), "{err}");
    let (ok, _, err) = cli(&[
        "kill-switch",
        "show",
        "--engine",
        &format!("http://{addr}"),
        "--engine-ca",
        path(&good.ca),
    ]);
    assert!(!ok && err.contains("use https://"), "{err}");

    // grpcurl, verifying the engine with the same CA.
    let grpcurl = crate::grpcurl::grpcurl();
    let out = std::process::Command::new(&grpcurl)
        .args(["-cacert", path(&good.ca), &addr, "list"])
        .output()
        .expect("grpcurl");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.lines().any(|l| l == "stratbox.v1.TradingEngine"),
        "grpcurl -cacert: {listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(&grpcurl)
        .args(["-cacert", path(&other.ca), &addr, "list"])
        .output()
        .expect("grpcurl");
    assert!(
        !out.status.success(),
        "grpcurl trusting another CA was answered"
    );
    assert!(engine.alive(), "the engine survived the refused clients");
}

#[test]
fn an_engine_requiring_client_certificates_refuses_clients_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = pki(&dir.path().join("good"));
    let other = pki(&dir.path().join("other"));
    let (_engine, addr) = tls_engine(dir.path(), &good, true);
    let tls_url = format!("https://{addr}");
    let show = |extra: &[&str]| {
        let mut args = vec![
            "kill-switch",
            "show",
            "--engine",
            &tls_url,
            "--engine-ca",
            path(&good.ca),
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let (ok, _, err) = show(&[
        "--engine-cert",
        path(&good.client_cert),
        "--engine-key",
        path(&good.client_key),
    ]);
    assert!(
        ok,
        "a client with a certificate of the engine's client CA: {err}"
    );
    let (ok, _, err) = show(&[]);
    assert!(!ok, "a client without a certificate was answered: {err}");
    let (ok, _, err) = show(&[
        "--engine-cert",
        path(&other.client_cert),
        "--engine-key",
        path(&other.client_key),
    ]);
    assert!(
        !ok,
        "a client certificate of another CA was accepted: {err}"
    );
}

#[test]
fn plain_tcp_is_served_on_loopback_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = cli(&[
        "engine",
        "--listen",
        "0.0.0.0:0",
        "--database",
        &format!("sqlite://{}", dir.path().join("e.db").display()),
    ]);
    assert!(!ok, "an engine served plain TCP on 0.0.0.0");
    assert!(
        err.contains("refusing to serve gRPC in plain TCP on 0.0.0.0:0")
            && err.contains("--tls-cert"),
        "{err}"
    );
    assert!(
        !dir.path().join("e.db").exists(),
        "refused before anything was opened"
    );
    // A CLI does not send keys in clear to another machine either.
    let (ok, _, err) = cli(&["kill-switch", "show", "--engine", "http://192.0.2.1:50051"]);
    assert!(!ok && err.contains("refusing plain TCP"), "{err}");
}
