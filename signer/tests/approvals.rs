//! Human approval through the admin port (approver certificates), on SQLite and PostgreSQL:
//! a transaction over the threshold waits and is signed only after approval; rejection,
//! expiry, two distinct approvers, viewers, approvals bound to their fields.

mod common;

use std::time::Duration;

use common::*;
use stratbox_proto::v1;

async fn show(h: &Harness, id: &str) -> v1::Approval {
    h.admin("alice")
        .await
        .show_approval(v1::GetApprovalRequest {
            trace: None,
            approval_id: id.into(),
        })
        .await
        .expect("show")
        .into_inner()
}

async fn decide(
    h: &Harness,
    who: &str,
    id: &str,
    approve: bool,
    reason: &str,
) -> Result<v1::Approval, tonic::Status> {
    let shown = show(h, id).await;
    h.admin(who)
        .await
        .decide_approval(v1::DecideApprovalRequest {
            trace: None,
            approval_id: id.into(),
            approve,
            reason: reason.into(),
            fields_hash: shown.fields_hash,
        })
        .await
        .map(|r| r.into_inner())
}

async fn over_threshold_waits_until_approved(b: Backend) {
    let h = Harness::start(b).await;
    // 2000 SBA: over the 1000 threshold, under the 5000 two-approver one.
    let req = Tx::swap(0, 2000).request("t-big", h.account);
    let r = h.sign(req.clone()).await;
    assert_eq!(outcome(&r), v1::SignOutcome::AwaitingApproval, "{r:?}");
    assert_eq!(r.approvals_required, 1);
    assert!(!r.approval_id.is_empty());
    assert_eq!(h.signed_count().await, 0, "nothing signed while it waits");
    // Re-sending it neither signs nor makes a second approval.
    let again = h.sign(req.clone()).await;
    assert_eq!(again.approval_id, r.approval_id);
    let listed = h
        .admin("carol")
        .await
        .list_approvals(v1::ListApprovalsRequest {
            trace: None,
            pending_only: true,
            limit: 10,
        })
        .await
        .expect("list")
        .into_inner()
        .approvals;
    assert_eq!(
        listed.len(),
        1,
        "one approval, however often the engine asks"
    );

    // The decoded view: amounts with symbols, not hex.
    let shown = show(&h, &r.approval_id).await;
    let decoded = shown.decoded.clone().expect("decoded");
    assert_eq!(decoded.action, "executor.swap");
    assert_eq!(decoded.pool_label, "SBA/SBB 0.3%");
    assert_eq!(decoded.outflows.len(), 1);
    assert_eq!(decoded.outflows[0].symbol, "SBA");
    assert_eq!(
        decoded.outflows[0].display, "2",
        "2000 raw units at 3 decimals"
    );
    assert!(
        decoded
            .arguments
            .iter()
            .any(|a| a == "amountIn = 2 SBA (2000)"),
        "{:?}",
        decoded.arguments
    );
    assert_eq!(shown.simulation.as_ref().map(|s| s.gas_used), Some(120_000));

    // The engine polls GetApproval.
    let mut engine = h.engine().await;
    let polled = engine
        .get_approval(v1::GetApprovalRequest {
            trace: None,
            approval_id: r.approval_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(approval_state(&polled), v1::ApprovalState::Pending);

    let decided = decide(&h, "alice", &r.approval_id, true, "looks right")
        .await
        .expect("approve");
    assert_eq!(approval_state(&decided), v1::ApprovalState::Approved);
    assert_eq!(decided.decided_by[0].name, "alice");
    let signed = h.sign(req.clone()).await;
    assert_signed(&signed);
    assert_eq!(signed.approval_id, r.approval_id);
    assert_eq!(h.signed_count().await, 1);
    // Once more: the same bytes.
    assert_eq!(h.sign(req).await.raw_transaction, signed.raw_transaction);
    // A fee bump of the approved transaction (same call, both fees +10%) and a cancel at its
    // nonce are signed at once: they move nothing the approved one did not.
    let mut bump = Tx::swap(0, 2000);
    bump.max_fee = 22_000_000_000;
    bump.tip = 1_100_000_000;
    assert_signed(&h.sign(bump.request("t-big#bump1", h.account)).await);
    let mut cancel = Tx::call(0, h.account, vec![]);
    cancel.max_fee = 24_200_000_000;
    cancel.tip = 1_210_000_000;
    cancel.gas_limit = 21_000;
    assert_signed(&h.sign(cancel.request("t-big#cancel", h.account)).await);
    // A new trade over the threshold at the next nonce still waits for a human.
    let next = h.sign(Tx::swap(1, 2000).request("t-big2", h.account)).await;
    assert_eq!(
        outcome(&next),
        v1::SignOutcome::AwaitingApproval,
        "{next:?}"
    );
    assert_eq!(h.signed_count().await, 3);
    let actions = h.audit_actions().await;
    for a in ["awaiting_approval", "approval_approved", "signed"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    h.stop().await;
}
both!(over_threshold_waits_until_approved);

async fn rejected_is_refused(b: Backend) {
    let h = Harness::start(b).await;
    let req = Tx::swap(0, 2000).request("t-rej", h.account);
    let r = h.sign(req.clone()).await;
    assert!(
        decide(&h, "bob", &r.approval_id, false, "").await.is_err(),
        "a rejection needs a reason"
    );
    let d = decide(&h, "bob", &r.approval_id, false, "pool looks thin")
        .await
        .expect("reject");
    assert_eq!(approval_state(&d), v1::ApprovalState::Rejected);
    assert_eq!(d.decided_by[0].reason, "pool looks thin");
    assert_refused(&h.sign(req).await, "approval_rejected");
    assert_eq!(h.signed_count().await, 0);
    h.stop().await;
}
both!(rejected_is_refused);

async fn expired_approval_is_refused(b: Backend) {
    let h = Harness::start_with(
        b,
        Options {
            approval_ttl_secs: 1,
            ..Options::default()
        },
    )
    .await;
    let req = Tx::swap(0, 2000).request("t-exp", h.account);
    let r = h.sign(req.clone()).await;
    assert_eq!(outcome(&r), v1::SignOutcome::AwaitingApproval);
    let id = r.approval_id.clone();
    wait_for(
        Duration::from_secs(10),
        "the approval to expire",
        || async { approval_state(&show(&h, &id).await) == v1::ApprovalState::Expired },
    )
    .await;
    let late = decide(&h, "alice", &id, true, "")
        .await
        .expect_err("an expired approval cannot be approved");
    assert!(
        late.message().contains("approval_expired")
            || late.message().contains("approval_not_pending"),
        "{late:?}"
    );
    assert_refused(&h.sign(req).await, "approval_expired");
    assert_eq!(h.signed_count().await, 0);
    h.stop().await;
}
both!(expired_approval_is_refused);

async fn two_approvers_above_the_second_threshold(b: Backend) {
    let h = Harness::start(b).await;
    let req = Tx::swap(0, 6000).request("t-two", h.account);
    let r = h.sign(req.clone()).await;
    assert_eq!(r.approvals_required, 2, "{r:?}");
    let first = decide(&h, "alice", &r.approval_id, true, "")
        .await
        .expect("alice");
    assert_eq!(
        approval_state(&first),
        v1::ApprovalState::Pending,
        "one of two"
    );
    // The same approver again does not count twice.
    let twice = decide(&h, "alice", &r.approval_id, true, "")
        .await
        .expect_err("alice twice");
    assert!(
        twice.message().contains("approval_already_decided"),
        "{twice:?}"
    );
    let waiting = h.sign(req.clone()).await;
    assert_eq!(
        outcome(&waiting),
        v1::SignOutcome::AwaitingApproval,
        "one approver where two are needed: {waiting:?}"
    );
    assert_eq!(h.signed_count().await, 0);
    // A viewer cannot decide.
    let viewer = decide(&h, "carol", &r.approval_id, true, "")
        .await
        .expect_err("viewer");
    assert_eq!(viewer.code(), tonic::Code::PermissionDenied);
    let second = decide(&h, "bob", &r.approval_id, true, "")
        .await
        .expect("bob");
    assert_eq!(approval_state(&second), v1::ApprovalState::Approved);
    assert_signed(&h.sign(req).await);
    h.stop().await;
}
both!(two_approvers_above_the_second_threshold);

async fn approval_reused_for_changed_fields(b: Backend) {
    let h = Harness::start(b).await;
    let req = Tx::swap(0, 2000).request("t-bound", h.account);
    let r = h.sign(req.clone()).await;
    decide(&h, "alice", &r.approval_id, true, "")
        .await
        .expect("approve");
    // Another task with other fields presenting that approval.
    let mut other = Tx::swap(0, 9000).request("t-other", h.account);
    other.approval_id = r.approval_id.clone();
    assert_refused(&h.sign(other).await, "approval_mismatch");
    // The approved task with changed fields.
    let mut changed = Tx::swap(0, 2500).request("t-bound", h.account);
    changed.approval_id = r.approval_id.clone();
    assert_refused(&h.sign(changed).await, "task_conflict");
    assert_eq!(h.signed_count().await, 0);
    // An approver who was shown other fields cannot approve.
    let r2 = h
        .sign(Tx::swap(1, 2000).request("t-bound-2", h.account))
        .await;
    let stale = h
        .admin("bob")
        .await
        .decide_approval(v1::DecideApprovalRequest {
            trace: None,
            approval_id: r2.approval_id.clone(),
            approve: true,
            reason: String::new(),
            fields_hash: "0".repeat(64),
        })
        .await
        .expect_err("a stale view");
    assert!(
        stale.message().contains("approval_fields_changed"),
        "{stale:?}"
    );
    // The original, approved, still signs.
    assert_signed(&h.sign(req).await);
    h.stop().await;
}
both!(approval_reused_for_changed_fields);

async fn staged_account_waits_for_everything(b: Backend) {
    let h = Harness::start(b).await;
    let r = h
        .sign(Tx::swap(0, 1).request("t-staged", h.staged_account))
        .await;
    assert_eq!(outcome(&r), v1::SignOutcome::AwaitingApproval, "{r:?}");
    assert!(r.detail.contains("staged"), "{r:?}");
    // The live account signs the same at once.
    assert_signed(&h.sign(Tx::swap(0, 1).request("t-live", h.account)).await);
    h.stop().await;
}
both!(staged_account_waits_for_everything);
