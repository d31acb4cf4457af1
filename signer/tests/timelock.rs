//! Policy changes: tightening applies at once, loosening only after the timelock, both
//! audited, and a restart neither forgets a pending change nor applies it early.

mod common;

use std::time::Duration;

use common::*;
use stratbox_proto::v1;

async fn status(h: &Harness) -> v1::PolicyStatusResponse {
    h.admin("carol")
        .await
        .policy_status(v1::PolicyStatusRequest { trace: None })
        .await
        .expect("status")
        .into_inner()
}

async fn reload(h: &Harness) -> v1::PolicyStatusResponse {
    h.admin("alice")
        .await
        .reload_policy(v1::PolicyStatusRequest { trace: None })
        .await
        .expect("reload")
        .into_inner()
}

fn on_chain_1(nonce: u64) -> Tx {
    let mut tx = Tx::swap(nonce, 10);
    tx.chain_id = 1;
    tx
}

async fn loosening_waits_for_the_timelock(b: Backend) {
    let h = Harness::start_with(
        b,
        Options {
            timelock_secs: 3,
            ..Options::default()
        },
    )
    .await;
    let before = status(&h).await;
    assert_eq!(before.timelock_secs, 3);
    let text = std::fs::read_to_string(h.policy_path()).expect("policy");
    std::fs::write(
        h.policy_path(),
        text.replace("chain_ids = [31337]", "chain_ids = [1, 31337]"),
    )
    .expect("write");

    let after = reload(&h).await;
    assert_eq!(
        after.active_hash, before.active_hash,
        "a loosening change is not active yet"
    );
    assert_eq!(after.pending.len(), 1);
    assert!(
        after.pending[0]
            .changes
            .iter()
            .any(|c| c.contains("allow chain id 1")),
        "{:?}",
        after.pending
    );
    // A viewer may read the status but not reload.
    let denied = h
        .admin("carol")
        .await
        .reload_policy(v1::PolicyStatusRequest { trace: None })
        .await;
    assert_eq!(
        denied.expect_err("viewer").code(),
        tonic::Code::PermissionDenied
    );

    // Before the timelock ends: refused.
    let r = h.sign(on_chain_1(0).request("t-early", h.account)).await;
    assert_refused(&r, "chain_not_allowed");
    assert_eq!(h.signed_count().await, 0);

    wait_for(Duration::from_secs(15), "the timelock to end", || async {
        status(&h).await.pending.is_empty()
    })
    .await;
    let later = status(&h).await;
    assert_ne!(later.active_hash, before.active_hash);
    assert!(
        later.active_toml.contains("chain_ids = [1, 31337]"),
        "{}",
        later.active_toml
    );
    assert_signed(&h.sign(on_chain_1(0).request("t-late", h.account)).await);
    let actions = h.audit_actions().await;
    for a in [
        "policy_bootstrap",
        "policy_loosening_pending",
        "policy_loosened",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
    h.stop().await;
}
both!(loosening_waits_for_the_timelock);

async fn tightening_applies_at_once(b: Backend) {
    let h = Harness::start(b).await;
    assert_signed(&h.sign(Tx::swap(0, 10).request("t-ok", h.account)).await);
    let text = std::fs::read_to_string(h.policy_path()).expect("policy");
    // Lower fee ceiling (tightens) and higher SBA cap (loosens) in one file.
    let text = text
        .replace(
            r#"max_fee_per_gas = "100000000000""#,
            r#"max_fee_per_gas = "10000000000""#,
        )
        .replace(
            r#"max_per_tx = "10000"
max_per_day = "20000"
functions = ["approve", "transfer"]"#,
            r#"max_per_tx = "15000"
max_per_day = "20000"
functions = ["approve", "transfer"]"#,
        );
    std::fs::write(h.policy_path(), text).expect("write");
    let s = reload(&h).await;
    assert!(s.last_reload.contains("1 tightening"), "{}", s.last_reload);
    assert_eq!(s.pending.len(), 1, "the cap raise waits");
    // The tightening is already in force: 20 gwei is over the new 10 gwei ceiling.
    assert_refused(
        &h.sign(Tx::swap(1, 10).request("t-fee", h.account)).await,
        "fee_too_high",
    );
    // The loosening is not: 12000 is still over the old 10000 cap.
    let mut big = Tx::swap(1, 12_000);
    big.max_fee = 5_000_000_000;
    assert_refused(&h.sign(big.request("t-cap", h.account)).await, "cap_per_tx");
    assert!(
        h.audit_actions()
            .await
            .iter()
            .any(|a| a == "policy_tightened")
    );
    h.stop().await;
}
both!(tightening_applies_at_once);

async fn restart_keeps_the_pending_change(b: Backend) {
    let mut h = Harness::start(b).await;
    let text = std::fs::read_to_string(h.policy_path()).expect("policy");
    std::fs::write(
        h.policy_path(),
        text.replace("chain_ids = [31337]", "chain_ids = [1, 31337]"),
    )
    .expect("write");
    let pending = reload(&h).await.pending;
    assert_eq!(pending.len(), 1);
    // A restart reads the loosened file again: it must neither apply it nor restart its clock.
    h.restart().await;
    let s = status(&h).await;
    assert_eq!(s.pending.len(), 1);
    assert_eq!(s.pending[0].effective_at_ms, pending[0].effective_at_ms);
    assert_refused(
        &h.sign(on_chain_1(0).request("t-restart", h.account)).await,
        "chain_not_allowed",
    );
    h.stop().await;
}
both!(restart_keeps_the_pending_change);
