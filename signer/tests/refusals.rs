//! Every refusal the issue lists, against the real service over real mutual TLS on
//! loopback, on SQLite and on PostgreSQL: each asserts the reason code and that nothing was
//! signed (no signed transaction in the store, the task recorded as refused).

mod common;

use common::*;
use stratbox_proto::v1;

/// Nothing signed, and the task (if it got that far) recorded as refused with `code`.
async fn nothing_signed(h: &Harness, task: &str, code: &str) {
    assert_eq!(h.signed_count().await, 0, "nothing may be signed");
    let row = h
        .store()
        .request(task)
        .await
        .expect("read")
        .expect("task recorded");
    assert_eq!(row.reason_code, code);
    assert!(row.raw_tx.is_empty());
}

/// A connection refused in the TLS handshake: the client sees the server's alert, or (TLS 1.3
/// lets it finish its side first, so it may already be writing) the connection torn down
/// under it: broken pipe, reset, closed). Always a transport error, never an answer (a
/// status) from the service.
fn handshake_refused(err: &str, alert: &str) -> bool {
    err.contains(alert) || err.contains("tonic::transport::Error(Transport")
}

async fn no_client_certificate(b: Backend) {
    let h = Harness::start(b).await;
    let err = match h.engine_as(None).await {
        // TLS 1.3: the client may finish its side before the server's alert arrives, so the
        // refusal shows on the first call.
        Ok(mut c) => c
            .sign_transaction(Tx::swap(0, 10).request("t-nocert", h.account))
            .await
            .expect_err("no certificate must be refused")
            .to_string(),
        Err(e) => format!("{e:?}"),
    };
    assert!(
        handshake_refused(&err, "CertificateRequired"),
        "refused in the handshake: {err}"
    );
    assert_eq!(h.signed_count().await, 0);
    assert!(
        h.store().request("t-nocert").await.expect("read").is_none(),
        "the request never reached the service"
    );
    h.stop().await;
}
both!(no_client_certificate);

async fn certificate_not_on_the_allowlist(b: Backend) {
    let h = Harness::start(b).await;
    // Issued by the same CA, but its SPKI is not on the allowlist.
    let result = match h.engine_as(Some("intruder")).await {
        Ok(mut c) => c
            .sign_transaction(Tx::swap(0, 10).request("t-intruder", h.account))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:?}")),
    };
    let err = result.expect_err("an unlisted certificate must be refused");
    assert!(
        handshake_refused(&err, "AccessDenied"),
        "refused in the handshake: {err}"
    );
    // An approver's certificate is on the admin port's allowlist, not the engine's.
    let result = match h.engine_as(Some("alice")).await {
        Ok(mut c) => c
            .sign_transaction(Tx::swap(0, 10).request("t-alice", h.account))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:?}")),
    };
    let err = result.expect_err("an approver certificate must not reach the signing port");
    assert!(handshake_refused(&err, "AccessDenied"), "{err}");
    // And the engine's is not on the admin port's.
    let result = match h.admin_as("engine").await {
        Ok(mut c) => c
            .list_approvals(v1::ListApprovalsRequest::default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:?}")),
    };
    let err = result.expect_err("the engine's certificate must not reach the admin port");
    assert!(handshake_refused(&err, "AccessDenied"), "{err}");
    assert_eq!(h.signed_count().await, 0);
    assert!(
        h.store()
            .request("t-intruder")
            .await
            .expect("read")
            .is_none()
    );
    // The handshake refusals are audited with the certificate's fingerprint.
    let intruder = h.intruder.spki_sha256.clone();
    wait_for(
        std::time::Duration::from_secs(10),
        "the refusal in the audit log",
        || async {
            stratbox_signer::audit::entries(h.store().pool())
                .await
                .expect("audit")
                .iter()
                .any(|e| e.entry.action == "handshake_refused" && e.entry.subject == intruder)
        },
    )
    .await;
    h.stop().await;
}
both!(certificate_not_on_the_allowlist);

async fn wrong_chain_id(b: Backend) {
    let h = Harness::start(b).await;
    let mut tx = Tx::swap(0, 10);
    tx.chain_id = 1;
    let r = h.sign(tx.request("t-chain", h.account)).await;
    assert_refused(&r, "chain_not_allowed");
    nothing_signed(&h, "t-chain", "chain_not_allowed").await;
    h.stop().await;
}
both!(wrong_chain_id);

async fn destination_off_policy(b: Backend) {
    let h = Harness::start(b).await;
    let r = h
        .sign(Tx::call(0, STRANGER, swap_input(10)).request("t-dest", h.account))
        .await;
    assert_refused(&r, "destination_not_allowed");
    nothing_signed(&h, "t-dest", "destination_not_allowed").await;
    // Ether to anyone but the account itself is a destination off policy too.
    let mut tx = Tx::call(0, STRANGER, vec![]);
    tx.value = alloy_primitives::U256::from(1u8);
    let r = h.sign(tx.request("t-ether", h.account)).await;
    assert_refused(&r, "destination_not_allowed");
    h.stop().await;
}
both!(destination_off_policy);

async fn selector_off_policy(b: Backend) {
    let h = Harness::start(b).await;
    // `burn` exists on the executor but the policy allows only swap and mint there.
    let burn =
        alloy_sol_types::SolCall::abi_encode(&stratbox_evm::abi::StratboxExecutor::burnCall {
            pool: POOL,
            tickLower: alloy_primitives::aliases::I24::try_from(-60i32).expect("tick"),
            tickUpper: alloy_primitives::aliases::I24::try_from(60i32).expect("tick"),
            liquidity: 1,
        });
    let r = h
        .sign(Tx::call(0, EXECUTOR, burn).request("t-sel", h.account))
        .await;
    assert_refused(&r, "selector_not_allowed");
    nothing_signed(&h, "t-sel", "selector_not_allowed").await;
    // A selector the executor does not have at all.
    let r = h
        .sign(
            Tx::call(0, EXECUTOR, vec![0xde, 0xad, 0xbe, 0xef, 0, 0]).request("t-sel2", h.account),
        )
        .await;
    assert_refused(&r, "selector_not_allowed");
    // A pool on no list.
    let swap_elsewhere =
        alloy_sol_types::SolCall::abi_encode(&stratbox_evm::abi::StratboxExecutor::swapCall {
            pool: STRANGER,
            zeroForOne: true,
            amountIn: alloy_primitives::U256::from(5u8),
            sqrtPriceLimitX96: alloy_primitives::aliases::U160::ZERO,
            amountOutMinimum: alloy_primitives::U256::ZERO,
        });
    let r = h
        .sign(Tx::call(0, EXECUTOR, swap_elsewhere).request("t-pool", h.account))
        .await;
    assert_refused(&r, "pool_not_allowed");
    // Calldata with bytes after the arguments.
    let mut trailing = swap_input(10);
    trailing.push(0);
    let r = h
        .sign(Tx::call(0, EXECUTOR, trailing).request("t-trail", h.account))
        .await;
    assert_refused(&r, "bad_calldata");
    assert_eq!(h.signed_count().await, 0);
    h.stop().await;
}
both!(selector_off_policy);

async fn recipient_other_than_the_account(b: Backend) {
    let h = Harness::start(b).await;
    let r = h
        .sign(Tx::call(0, SBA, transfer_input(STRANGER, 5)).request("t-rcpt", h.account))
        .await;
    assert_refused(&r, "recipient_not_account");
    nothing_signed(&h, "t-rcpt", "recipient_not_account").await;
    // An approval to anyone but the executor.
    let r = h
        .sign(Tx::call(0, SBA, approve_input(STRANGER)).request("t-spender", h.account))
        .await;
    assert_refused(&r, "spender_not_allowed");
    assert_eq!(h.signed_count().await, 0);
    // To the account itself is fine (it moves nothing).
    let r = h
        .sign(Tx::call(0, SBA, transfer_input(h.account, 5)).request("t-self", h.account))
        .await;
    assert_signed(&r);
    h.stop().await;
}
both!(recipient_other_than_the_account);

async fn value_over_the_per_transaction_cap(b: Backend) {
    let h = Harness::start(b).await;
    let r = h
        .sign(Tx::swap(0, 10_001).request("t-cap", h.account))
        .await;
    assert_refused(&r, "cap_per_tx");
    assert!(
        r.detail.contains("SBA"),
        "the detail names the token: {}",
        r.detail
    );
    nothing_signed(&h, "t-cap", "cap_per_tx").await;
    h.stop().await;
}
both!(value_over_the_per_transaction_cap);

async fn value_over_the_daily_cap(b: Backend) {
    let h = Harness::start(b).await;
    // Under the approval threshold each (1000), 20 of them reach the 20000 daily cap.
    for n in 0..20u64 {
        let r = h
            .sign(Tx::swap(n, 1000).request(&format!("t-day-{n}"), h.account))
            .await;
        assert_signed(&r);
    }
    let r = h
        .sign(Tx::swap(20, 1).request("t-day-over", h.account))
        .await;
    assert_refused(&r, "cap_daily");
    assert_eq!(h.signed_count().await, 20, "the refused one was not signed");
    let row = h
        .store()
        .request("t-day-over")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.reason_code, "cap_daily");
    h.stop().await;
}
both!(value_over_the_daily_cap);

async fn fee_over_the_maximum(b: Backend) {
    let h = Harness::start(b).await;
    let mut tx = Tx::swap(0, 10);
    tx.max_fee = 100_000_000_001;
    let r = h.sign(tx.request("t-fee", h.account)).await;
    assert_refused(&r, "fee_too_high");
    nothing_signed(&h, "t-fee", "fee_too_high").await;
    let mut tx = Tx::swap(0, 10);
    tx.gas_limit = 1_000_001;
    let r = h.sign(tx.request("t-gas", h.account)).await;
    assert_refused(&r, "gas_limit_too_high");
    h.stop().await;
}
both!(fee_over_the_maximum);

async fn replayed_or_lower_nonce_with_different_fields(b: Backend) {
    let h = Harness::start(b).await;
    for n in 0..3u64 {
        assert_signed(
            &h.sign(Tx::swap(n, 100 + n).request(&format!("t-n{n}"), h.account))
                .await,
        );
    }
    // Nonce 2 again with different fields.
    let r = h.sign(Tx::swap(2, 555).request("t-reuse", h.account)).await;
    assert_refused(&r, "nonce_reused");
    // Nonce 1 (below the highest) with different fields.
    let r = h.sign(Tx::swap(1, 556).request("t-low", h.account)).await;
    assert_refused(&r, "nonce_reused");
    // A gap below the highest: skip 3, sign 4, then 3 is too low for anything but a cancel.
    assert_signed(&h.sign(Tx::swap(4, 104).request("t-n4", h.account)).await);
    let r = h.sign(Tx::swap(3, 103).request("t-gap", h.account)).await;
    assert_refused(&r, "nonce_too_low");
    assert_eq!(
        h.signed_count().await,
        4,
        "no refused transaction was signed"
    );
    for (task, code) in [
        ("t-reuse", "nonce_reused"),
        ("t-low", "nonce_reused"),
        ("t-gap", "nonce_too_low"),
    ] {
        let row = h.store().request(task).await.expect("read").expect("row");
        assert_eq!(row.reason_code, code);
    }
    h.stop().await;
}
both!(replayed_or_lower_nonce_with_different_fields);

async fn permitted_replacements(b: Backend) {
    let h = Harness::start(b).await;
    let first = h.sign(Tx::swap(0, 100).request("t-a", h.account)).await;
    assert_signed(&first);
    // The identical transaction for another task: the same bytes, signed once.
    let again = h.sign(Tx::swap(0, 100).request("t-a2", h.account)).await;
    assert_eq!(again.raw_transaction, first.raw_transaction);
    // A bump under 10% is refused; 10% on both fees is a permitted replacement.
    let mut low = Tx::swap(0, 100);
    low.max_fee = 21_000_000_000;
    low.tip = 1_100_000_000;
    assert_refused(
        &h.sign(low.request("t-bump-low", h.account)).await,
        "nonce_reused",
    );
    let mut bump = Tx::swap(0, 100);
    bump.max_fee = 22_000_000_000;
    bump.tip = 1_100_000_000;
    let bumped = h.sign(bump.request("t-bump", h.account)).await;
    assert_signed(&bumped);
    assert_ne!(bumped.raw_transaction, first.raw_transaction);
    // A cancel (0-value self-transfer, no calldata) at the same nonce.
    let cancel = h
        .sign(Tx::call(0, h.account, vec![]).request("t-cancel", h.account))
        .await;
    assert_signed(&cancel);
    // Neither the replacement nor the cancel counted again toward the day's spend.
    let spent = h
        .store()
        .spent(
            &format!("{:#x}", h.account),
            &[SBA],
            stratbox_signer::store::now_ms(),
        )
        .await
        .expect("spent");
    assert_eq!(spent[&SBA], alloy_primitives::U256::from(100u64));
    h.stop().await;
}
both!(permitted_replacements);

async fn idempotent_per_task(b: Backend) {
    let h = Harness::start(b).await;
    let req = Tx::swap(0, 100).request("t-idem", h.account);
    let first = h.sign(req.clone()).await;
    assert_signed(&first);
    let second = h.sign(req.clone()).await;
    assert_eq!(
        second, first,
        "the same task and fields get the same answer"
    );
    // Same task, different fields.
    let r = h.sign(Tx::swap(1, 100).request("t-idem", h.account)).await;
    assert_refused(&r, "task_conflict");
    assert_eq!(h.signed_count().await, 1);
    // A refusal is stable too.
    let mut bad = Tx::swap(1, 100);
    bad.chain_id = 5;
    let r1 = h.sign(bad.request("t-idem-refused", h.account)).await;
    let r2 = h.sign(bad.request("t-idem-refused", h.account)).await;
    assert_refused(&r1, "chain_not_allowed");
    assert_eq!(r1, r2);
    // The engine's trace id is not part of the fields.
    let mut other_trace = req.clone();
    other_trace.trace = Some(v1::TraceContext {
        trace_id: "f".repeat(32),
        span_id: String::new(),
    });
    assert_eq!(h.sign(other_trace).await, first);
    h.stop().await;
}
both!(idempotent_per_task);

async fn malformed_fields_are_refused(b: Backend) {
    let h = Harness::start(b).await;
    let mut req = Tx::swap(0, 100).request("t-float", h.account);
    if let Some(tx) = req.tx.as_mut() {
        tx.value = amount("1.5");
    }
    assert_refused(&h.sign(req).await, "bad_request");
    let mut req = Tx::swap(0, 100).request("t-noto", h.account);
    if let Some(tx) = req.tx.as_mut() {
        tx.to = None;
    }
    assert_refused(&h.sign(req).await, "destination_not_allowed");
    let req = Tx::swap(0, 100).request("t-stranger", STRANGER);
    assert_refused(&h.sign(req).await, "unknown_account");
    assert_eq!(h.signed_count().await, 0);
    h.stop().await;
}
both!(malformed_fields_are_refused);
