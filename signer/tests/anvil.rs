//! End to end on a real chain, once with the development keystore and once with the 2-of-3
//! threshold key (three share servers holding the cached test key; the account is the address
//! the threshold key derives): the signer signs an approval and a swap on
//! the real executor and Uniswap V3 pool deployed on Anvil; the test plays the engine over
//! mutual TLS and sends the signed bytes itself; the node mines them from the keystore's
//! address. The signer never talks to the chain.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use common::*;
use stratbox_evm::abi::IERC20;
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig};

fn policy(
    d: &deploy::Deployment,
    sym0: &str,
    sym1: &str,
    account: Address,
    staged: Address,
) -> String {
    format!(
        r#"
chain_ids = [31337]
max_fee_per_gas = "100000000000"
max_priority_fee_per_gas = "10000000000"
max_gas_limit = 1000000

[[executors]]
address = "{executor:#x}"
functions = ["swap", "mint", "burn"]

[[tokens]]
symbol = "{sym0}"
address = "{t0:#x}"
decimals = 18
max_per_tx = "10000000000000000000"
max_per_day = "100000000000000000000"
functions = ["approve"]

[[tokens]]
symbol = "{sym1}"
address = "{t1:#x}"
decimals = 18
max_per_tx = "10000000000000000000"
max_per_day = "100000000000000000000"
functions = ["approve"]

[[pools]]
address = "{pool:#x}"
token0 = "{sym0}"
token1 = "{sym1}"
fee = 3000

[[accounts]]
address = "{account:#x}"
key_index = 0
mode = "live"
thresholds = {{ {sym0} = {{ approval = "5000000000000000000", two_approvals = "8000000000000000000" }}, {sym1} = {{ approval = "5000000000000000000", two_approvals = "8000000000000000000" }} }}

[[accounts]]
address = "{staged:#x}"
key_index = 1
mode = "staged"
"#,
        executor = d.executor,
        t0 = d.token0,
        t1 = d.token1,
        pool = d.pool,
    )
}

async fn mined<P: Provider>(provider: &P, raw: &[u8]) -> alloy::rpc::types::TransactionReceipt {
    let pending = provider
        .send_raw_transaction(raw)
        .await
        .expect("node accepts the signed bytes");
    let hash = *pending.tx_hash();
    let start = Instant::now();
    loop {
        if let Some(r) = provider
            .get_transaction_receipt(hash)
            .await
            .expect("receipt")
        {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no receipt for {hash}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_by_the_service_and_mined_on_anvil() {
    signed_and_mined(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_with_the_threshold_key_and_mined_on_anvil() {
    signed_and_mined(true).await;
}

async fn signed_and_mined(threshold: bool) {
    let anvil =
        Anvil::spawn().expect("anvil (npm @foundry-rs/anvil-linux-amd64; run scripts/setup)");
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().expect("url"));
    let dev = anvil.accounts()[0];
    let d = deploy::deploy(&provider, dev, &DeployConfig::default())
        .await
        .expect("deploy");
    let sym0 = deploy::read_call(&provider, d.token0, IERC20::symbolCall {}, "symbol")
        .await
        .expect("symbol0");
    let sym1 = deploy::read_call(&provider, d.token1, IERC20::symbolCall {}, "symbol")
        .await
        .expect("symbol1");

    let dd = d;
    let (s0, s1) = (sym0.clone(), sym1.clone());
    let h = Harness::start_with(
        Backend::Sqlite,
        Options {
            policy: Some(Arc::new(move |a, b| policy(&dd, &s0, &s1, a, b))),
            threshold,
            ..Options::default()
        },
    )
    .await;
    let account = h.account;
    assert_eq!(
        h.running().signer.keys().kind(),
        if threshold {
            "threshold-2of3-cggmp21"
        } else {
            "dev-keystore"
        },
        "the service signs with the key the config names"
    );

    // The keystore's account gets ether for gas and tokens to trade, from the dev account.
    let fund = TransactionRequest::default()
        .with_from(dev)
        .with_to(account)
        .with_value(U256::from(10u128.pow(19)));
    deploy::send_request(&provider, fund, "fund ether")
        .await
        .expect("ether");
    let tokens = U256::from(10u128.pow(20));
    d.fund(&provider, account, tokens, tokens)
        .await
        .expect("tokens");

    let mut txs = vec![
        (
            Tx::call(0, d.token0, approve_input(d.executor)),
            "approve token0",
        ),
        (
            Tx::call(1, d.token1, approve_input(d.executor)),
            "approve token1",
        ),
    ];
    let swap = deploy::executor_swap_calldata(
        d.pool,
        true,
        U256::from(10u128.pow(18)),
        None,
        U256::from(1u8),
    )
    .expect("swap");
    txs.push((Tx::call(2, d.executor, swap.to_vec()), "swap"));
    for (tx, _) in txs.iter_mut() {
        tx.gas_limit = 500_000;
        tx.max_fee = 20_000_000_000;
        tx.tip = 1_000_000_000;
    }
    let before0 = deploy::read_call(
        &provider,
        d.token0,
        IERC20::balanceOfCall { account },
        "balance",
    )
    .await
    .expect("b0");
    let before1 = deploy::read_call(
        &provider,
        d.token1,
        IERC20::balanceOfCall { account },
        "balance",
    )
    .await
    .expect("b1");

    for (i, (tx, what)) in txs.iter().enumerate() {
        let r = h.sign(tx.request(&format!("e2e-{i}"), account)).await;
        assert_signed(&r);
        let receipt = mined(&provider, &r.raw_transaction).await;
        assert!(receipt.status(), "{what} reverted");
        assert_eq!(
            receipt.from, account,
            "{what} mined from the keystore's address"
        );
        assert_eq!(
            format!("{:#x}", receipt.transaction_hash),
            r.tx_hash,
            "the hash the signer computed"
        );
    }
    let after0 = deploy::read_call(
        &provider,
        d.token0,
        IERC20::balanceOfCall { account },
        "balance",
    )
    .await
    .expect("a0");
    let after1 = deploy::read_call(
        &provider,
        d.token1,
        IERC20::balanceOfCall { account },
        "balance",
    )
    .await
    .expect("a1");
    assert_eq!(
        before0 - after0,
        U256::from(10u128.pow(18)),
        "the swap sold exactly amountIn of token0"
    );
    assert!(after1 > before1, "and the account received token1");
    assert_eq!(h.signed_count().await, 3);

    // A swap over the approval threshold waits; approved, it is signed and mined too.
    let big = deploy::executor_swap_calldata(
        d.pool,
        false,
        U256::from(6u128 * 10u128.pow(18)),
        None,
        U256::from(1u8),
    )
    .expect("swap");
    let mut tx = Tx::call(3, d.executor, big.to_vec());
    tx.gas_limit = 500_000;
    let req = tx.request("e2e-big", account);
    let waiting = h.sign(req.clone()).await;
    assert_eq!(
        outcome(&waiting),
        stratbox_proto::v1::SignOutcome::AwaitingApproval
    );
    let shown = h
        .admin("alice")
        .await
        .show_approval(stratbox_proto::v1::GetApprovalRequest {
            trace: None,
            approval_id: waiting.approval_id.clone(),
        })
        .await
        .expect("show")
        .into_inner();
    let decoded = shown.decoded.clone().expect("decoded");
    assert_eq!(decoded.outflows[0].symbol, sym1);
    assert_eq!(decoded.outflows[0].display, "6");
    h.admin("alice")
        .await
        .decide_approval(stratbox_proto::v1::DecideApprovalRequest {
            trace: None,
            approval_id: waiting.approval_id.clone(),
            approve: true,
            reason: "e2e".into(),
            fields_hash: shown.fields_hash,
        })
        .await
        .expect("approve");
    let signed = h.sign(req).await;
    assert_signed(&signed);
    let receipt = mined(&provider, &signed.raw_transaction).await;
    assert!(receipt.status());
    assert_eq!(receipt.from, account);
    let _ = IERC20::balanceOfCall { account }.abi_encode();
    h.stop().await;
}
