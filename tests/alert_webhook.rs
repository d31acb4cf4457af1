//! The engine's critical events reach a webhook in Alertmanager's JSON format: a
//! reconciliation difference induced on Anvil (ether sent to the live account around
//! stratbox, as in `live_e2e`) is posted, with the account and the asset as labels, and so
//! is the kill switch it engages. The receiver is a real HTTP server in the test; it refuses
//! the first post, so the alert arrives only because the engine retried it.
//!
//! Minimal live setup: Anvil with the real contracts, a live-mode engine (SQLite) and its
//! live path, whose signer is never called (nothing is traded), so its certificates exist
//! but no signer runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::providers::ProviderBuilder;
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::U256;
use stratbox_engine::alert::WebhookConfig;
use stratbox_engine::live::{Live, LiveConfig, SignerEndpoint};
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig};
use stratbox_signer::certs::DevCa;
use tokio::sync::mpsc;

use crate::live_e2e::live_engine;
use crate::support;

/// A webhook receiver on loopback: every body it is posted, as JSON; the first post is
/// answered 503.
async fn receiver() -> (
    String,
    mpsc::UnboundedReceiver<serde_json::Value>,
    Arc<AtomicUsize>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let posts = Arc::new(AtomicUsize::new(0));
    let seen = posts.clone();
    let app = axum::Router::new().route(
        "/api/v2/alerts",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let value: serde_json::Value =
                    serde_json::from_str(&body).expect("the engine posts JSON");
                let _ = tx.send(value);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/api/v2/alerts"), rx, posts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_difference_reaches_the_webhook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let anvil = Anvil::spawn().expect("anvil (npm @foundry-rs/anvil-linux-amd64; scripts/setup)");
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().expect("url"));
    let dev = anvil.accounts()[0];
    let account = anvil.accounts()[1];
    let d = deploy::deploy(&provider, dev, &DeployConfig::default())
        .await
        .expect("deploy");
    let database = format!("sqlite://{}", dir.path().join("engine.db").display());
    let (_store, engine) = live_engine(&database, &anvil.endpoint(), &d, account).await;

    let (url, mut posted, posts) = receiver().await;
    let _webhook = engine
        .start_alert_webhook(WebhookConfig {
            first_backoff: Duration::from_millis(50),
            ..WebhookConfig::new(&url)
        })
        .expect("webhook");

    // The live path's signer connection is lazy and never used here.
    let certs = dir.path().join("certs");
    let ca = DevCa::create(&certs).expect("dev CA");
    let client = ca
        .issue_client(&certs, "engine", "engine")
        .expect("client certificate");
    let signer = SignerEndpoint {
        url: "https://127.0.0.1:1".into(),
        ca: ca.cert.clone(),
        cert: client.cert,
        key: client.key,
        server_name: "localhost".into(),
    };
    let live = Live::connect(
        engine.clone(),
        LiveConfig::new(&anvil.endpoint(), account.into_array(), signer),
    )
    .await
    .expect("live path");
    // The first step opens the wallet at the chain's balances: nothing differs yet.
    live.step().await.expect("first step");
    assert!(!engine.kill_switch().engaged);
    assert_eq!(posts.load(Ordering::SeqCst), 0, "nothing to alert on yet");

    // Ether sent to the account around stratbox.
    deploy::send_request(
        &provider,
        TransactionRequest::default()
            .with_from(dev)
            .with_to(account)
            .with_value(U256::from(1_000_000_000_000_000_000u128)),
        "an outside deposit",
    )
    .await
    .expect("deposit");
    let r = live
        .reconcile()
        .await
        .expect("reconcile")
        .expect("the wallet is open");
    assert!(!r.is_zero(), "the deposit is a difference");
    assert!(engine.kill_switch().engaged);

    // Both alerts arrive, each a one-element postableAlerts array.
    let mut by_name = std::collections::BTreeMap::new();
    while by_name.len() < 2 {
        let body = tokio::time::timeout(Duration::from_secs(30), posted.recv())
            .await
            .expect("an alert within 30 s")
            .expect("receiver open");
        let alerts = body.as_array().expect("a postableAlerts array");
        assert_eq!(alerts.len(), 1, "{body}");
        let name = alerts[0]["labels"]["alertname"]
            .as_str()
            .expect("alertname")
            .to_owned();
        by_name.insert(name, alerts[0].clone());
    }
    let me = format!("{account:#x}");
    let diff = &by_name["StratboxReconciliationDifference"];
    assert_eq!(diff["labels"]["severity"], "critical", "{diff}");
    assert_eq!(diff["labels"]["service"], "stratbox-engine", "{diff}");
    assert_eq!(diff["labels"]["asset"], "ether", "{diff}");
    assert_eq!(
        diff["labels"]["account"].as_str().map(str::to_lowercase),
        Some(me.clone()),
        "{diff}"
    );
    let text = diff["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("1000000000000000000"), "{diff}");
    assert!(
        diff["startsAt"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{diff}"
    );
    let kill = &by_name["StratboxKillSwitchEngaged"];
    assert_eq!(kill["labels"]["operator"], "reconciliation", "{kill}");
    assert!(
        posts.load(Ordering::SeqCst) >= 3,
        "the refused first post was retried"
    );
    let m = engine.metrics();
    support::wait_until(
        "both alerts counted as sent",
        Duration::from_secs(10),
        async || m.alerts.get_or_create(&[("result", "sent")]).get() >= 2,
    )
    .await;
    assert_eq!(m.alerts.get_or_create(&[("result", "failed")]).get(), 0);
    assert_eq!(m.alerts.get_or_create(&[("result", "dropped")]).get(), 0);
}
