//! The audit log's hash chain on a real store: intact after real traffic, broken at the
//! first entry edited by hand (even with the append-only trigger removed first), and at a
//! deleted tail.

mod common;

use common::*;
use sqlx::Executor;
use stratbox_signer::audit::{self, Verdict};

async fn traffic(h: &Harness) {
    assert_signed(&h.sign(Tx::swap(0, 10).request("t-1", h.account)).await);
    let mut bad = Tx::swap(1, 10);
    bad.chain_id = 9;
    assert_refused(
        &h.sign(bad.request("t-2", h.account)).await,
        "chain_not_allowed",
    );
    assert_signed(&h.sign(Tx::swap(1, 20).request("t-3", h.account)).await);
}

async fn untouched_log_verifies(b: Backend) {
    let h = Harness::start(b).await;
    traffic(&h).await;
    match audit::verify(h.store().pool()).await.expect("verify") {
        Verdict::Intact { entries, .. } => {
            assert!(entries >= 4, "bootstrap + 3 decisions: {entries}")
        }
        broken => panic!("an untouched log must verify: {broken:?}"),
    }
    // The table refuses updates as it is.
    let refused = h
        .store()
        .pool()
        .execute("UPDATE audit_log SET detail = 'x' WHERE seq = 2")
        .await;
    assert!(refused.is_err(), "audit_log must be append-only");
    h.stop().await;
}
both!(untouched_log_verifies);

async fn edited_entry_is_named(b: Backend) {
    let h = Harness::start(b).await;
    traffic(&h).await;
    let pool = h.store().pool();
    match b {
        Backend::Sqlite => {
            pool.execute("DROP TRIGGER audit_log_no_update")
                .await
                .expect("drop trigger");
        }
        Backend::Postgres => {
            pool.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
                .await
                .expect("disable trigger");
        }
    }
    pool.execute("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 3")
        .await
        .expect("edit");
    match audit::verify(pool).await.expect("verify") {
        Verdict::Broken { seq, why } => {
            assert_eq!(seq, 3, "{why}");
            assert!(why.contains("altered"), "{why}");
        }
        v => panic!("an edited log must not verify: {v:?}"),
    }
    h.stop().await;
}
both!(edited_entry_is_named);

async fn deleted_entries_are_named(b: Backend) {
    let h = Harness::start(b).await;
    traffic(&h).await;
    let pool = h.store().pool();
    match b {
        Backend::Sqlite => {
            pool.execute("DROP TRIGGER audit_log_no_delete")
                .await
                .expect("drop trigger");
        }
        Backend::Postgres => {
            pool.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
                .await
                .expect("disable trigger");
        }
    }
    pool.execute("DELETE FROM audit_log WHERE seq = 2")
        .await
        .expect("delete");
    match audit::verify(pool).await.expect("verify") {
        Verdict::Broken { seq, why } => assert_eq!(seq, 2, "{why}"),
        v => panic!("{v:?}"),
    }
    h.stop().await;
}
both!(deleted_entries_are_named);
