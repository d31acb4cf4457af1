//! A transaction signed by the threshold key is accepted by a real Anvil and mined from the
//! address the key derives for the account.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::eips::eip2718::Encodable2718;
use alloy::network::TransactionBuilder;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, TxKind, U256};
use common::{cluster_with_key, init_tracing};
use stratbox_evm::anvil::Anvil;
use stratbox_threshold::{KeySource, ThresholdClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_signed_eip1559_transaction_is_mined_from_the_derived_address() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (cluster, _) = cluster_with_key(dir.path()).await;
    let client = ThresholdClient::connect(&cluster.client_config())
        .await
        .unwrap();
    // What the signer service holds.
    let keys: Arc<dyn KeySource> = Arc::new(client);
    let account = 4;
    let from = Address::from(keys.address(account).unwrap());

    // Anvil from the npm package; if it cannot start, this test fails (no skipping).
    let anvil = tokio::task::spawn_blocking(Anvil::spawn)
        .await
        .unwrap()
        .expect("anvil starts (run scripts/setup)");
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().unwrap());
    stratbox_evm::deploy::send_request(
        &provider,
        TransactionRequest::default()
            .with_from(anvil.accounts()[0])
            .with_to(from)
            .with_value(U256::from(10).pow(U256::from(18))),
        "fund the derived address",
    )
    .await
    .unwrap();

    let recipient = Address::repeat_byte(0x42);
    let value = U256::from(123_456_789u64);
    let tx = TxEip1559 {
        chain_id: anvil.chain_id(),
        nonce: provider.get_transaction_count(from).await.unwrap(),
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(recipient),
        value,
        access_list: Default::default(),
        input: Default::default(),
    };
    let signature = keys
        .sign_prehash(account, tx.signature_hash().0)
        .await
        .unwrap();
    let signed = tx.into_signed(alloy_primitives::Signature::new(
        U256::from_be_bytes(signature.r),
        U256::from_be_bytes(signature.s),
        signature.y_parity,
    ));
    let raw = TxEnvelope::from(signed).encoded_2718();
    let pending = provider.send_raw_transaction(&raw).await.unwrap();
    let hash = *pending.tx_hash();

    let started = Instant::now();
    let receipt = loop {
        if let Some(receipt) = provider.get_transaction_receipt(hash).await.unwrap() {
            break receipt;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no receipt for {hash}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(receipt.status(), "transaction reverted");
    assert_eq!(receipt.from, from, "mined from another address");
    assert_eq!(provider.get_balance(recipient).await.unwrap(), value);
    drop(keys);
    cluster.shutdown().await.unwrap();
}
