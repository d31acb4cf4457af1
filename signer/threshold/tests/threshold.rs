//! The threshold key end to end, with the three share servers as tasks of this process on
//! loopback ports (mutual TLS between all of them, as between processes).

mod common;

use std::time::Duration;

use common::{PASSPHRASE, cluster_with_key, init_tracing};
use k256::ecdsa::VerifyingKey;
use stratbox_threshold::identity::{Identity, share_name};
use stratbox_threshold::proto::threshold_share_client::ThresholdShareClient;
use stratbox_threshold::proto::{
    ListPresignaturesRequest, ProtocolMessage, SessionKind, SignPartialRequest, StatusRequest,
};
use stratbox_threshold::share::{share_channel, share_file};
use stratbox_threshold::{
    Cluster, DerivationPath, KeySource, PAIRS, Passphrase, PublicKeyInfo, ThresholdClient,
    ThresholdError,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn hash(tag: u8) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0] = tag;
    h[31] = 0x5a;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_agree_every_pair_signs_and_share_files_are_sealed() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (cluster, outcome) = cluster_with_key(dir.path()).await;

    // The three public shares agree on one key: ask each share process directly.
    let config = cluster.client_config();
    let coordinator = Identity::load(&config.cert, &config.key).unwrap();
    let cluster_file = Cluster::load(&config.cluster).unwrap();
    let mut reported = Vec::new();
    for index in 0..3 {
        let mut share =
            share_channel(&cluster_file, index, &coordinator, Duration::from_secs(5)).unwrap();
        let status = share.status(StatusRequest {}).await.unwrap().into_inner();
        assert_eq!(status.index, u32::from(index));
        reported.push(PublicKeyInfo::from_proto(&status.key.expect("committed key")).unwrap());
    }
    assert_eq!(reported[0], reported[1]);
    assert_eq!(reported[1], reported[2]);
    assert_eq!(reported[0], outcome.key);
    assert_eq!(outcome.key.threshold, 2);
    assert_eq!(outcome.key.public_shares.len(), 3);

    let client = ThresholdClient::connect(&config).await.unwrap();
    assert_eq!(client.public_key(), &outcome.key);
    let accounts = [
        DerivationPath::account(0).unwrap(),
        DerivationPath::account(7).unwrap(),
    ];
    assert_ne!(
        client.address(&accounts[0]).unwrap(),
        client.address(&accounts[1]).unwrap(),
        "accounts must get distinct addresses"
    );
    assert_eq!(
        outcome.addresses[0],
        (0, client.address(&accounts[0]).unwrap())
    );
    for (n, pair) in PAIRS.iter().enumerate() {
        for (m, account) in accounts.iter().enumerate() {
            let h = hash((n * 2 + m) as u8);
            let sig = client.sign_prehash_with(*pair, account, h).await.unwrap();
            // k256 verifies it under the child key derived from public data ...
            let child = client.public_key().child_key(account).unwrap();
            let k = k256::ecdsa::Signature::from_scalars(sig.r, sig.s).unwrap();
            child.verify_prehash_for_tests(&h, &k);
            assert!(k.normalize_s().is_none(), "s must be low (EIP-2)");
            // ... and it recovers to the account's address.
            assert_eq!(
                sig.recover_address(&h).unwrap(),
                client.address(account).unwrap(),
                "pair {pair:?} account {account}"
            );
        }
    }
    // The KeySource surface the signer service uses says the same.
    let source: &dyn KeySource = &client;
    assert_eq!(source.kind(), "threshold-2of3-cggmp21");
    let sig = source.sign_prehash(7, hash(99)).await.unwrap();
    assert_eq!(
        sig.recover_address(&hash(99)).unwrap(),
        source.address(7).unwrap()
    );
    drop(client);
    cluster.shutdown().await.unwrap();
    check_share_files(dir.path(), &outcome);
}

trait VerifyForTests {
    fn verify_prehash_for_tests(&self, hash: &[u8; 32], sig: &k256::ecdsa::Signature);
}

impl VerifyForTests for VerifyingKey {
    fn verify_prehash_for_tests(&self, hash: &[u8; 32], sig: &k256::ecdsa::Signature) {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        self.verify_prehash(hash, sig)
            .expect("signature verifies under the derived key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_share_down_still_signs_and_two_down_signs_nothing() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _) = cluster_with_key(dir.path()).await;
    let mut config = cluster.client_config();
    config.pool_target = 2;
    let client = ThresholdClient::connect(&config).await.unwrap();
    client
        .wait_for_pools(&PAIRS, 2, Duration::from_secs(600))
        .await
        .unwrap();
    let account = DerivationPath::account(1).unwrap();
    let address = client.address(&account).unwrap();

    cluster.stop(1).await.unwrap();
    for n in 0..3u8 {
        let h = hash(0x10 + n);
        let sig = client
            .sign_prehash(&account, h)
            .await
            .expect("signs with shares 0 and 2 while share 1 is down");
        assert_eq!(sig.recover_address(&h).unwrap(), address);
    }

    cluster.stop(2).await.unwrap();
    let err = client
        .sign_prehash(&account, hash(0x20))
        .await
        .expect_err("one share alone must not sign");
    match &err {
        ThresholdError::NotEnoughShares {
            available, needed, ..
        } => {
            assert_eq!(*needed, 2);
            assert!(*available < 2, "{err}");
        }
        other => panic!("expected NotEnoughShares, got {other}"),
    }
    assert!(err.to_string().contains("nothing was signed"), "{err}");
    drop(client);
    cluster.shutdown().await.unwrap();
}

async fn raw_call_status(endpoint: Endpoint) -> Result<(), tonic::Status> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    ThresholdShareClient::new(channel)
        .status(StatusRequest {})
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_wrong_role_callers_are_refused() {
    init_tracing();
    // No key is needed to check who may talk to a share process.
    let dir = tempfile::tempdir().unwrap();
    let cluster = stratbox_threshold::local::LocalCluster::start_idle(dir.path(), PASSPHRASE)
        .await
        .unwrap();
    let cluster_file = Cluster::load(&cluster.files.cluster).unwrap();
    let share0 = cluster_file.share(0).unwrap().clone();
    let endpoint = |tls: ClientTlsConfig| {
        Endpoint::from_shared(format!("https://{}", share0.address))
            .unwrap()
            .tls_config(tls)
            .unwrap()
    };
    let pinned = || {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&share0.cert_pem))
            .domain_name(share_name(0))
    };

    // The coordinator itself gets in (so the refusals below are about identity, not setup).
    let (cert, key) = &cluster.files.coordinator;
    let coordinator = Identity::load(cert, key).unwrap();
    raw_call_status(endpoint(pinned().identity(
        tonic::transport::Identity::from_pem(&coordinator.cert_pem, coordinator.key_pem()),
    )))
    .await
    .expect("the coordinator is let in");

    // No client certificate: the TLS handshake fails.
    assert!(raw_call_status(endpoint(pinned())).await.is_err());

    // A certificate that claims the coordinator's name but is not the pinned one.
    let impostor = Identity::generate("stratbox-coordinator").unwrap();
    assert!(
        raw_call_status(endpoint(pinned().identity(
            tonic::transport::Identity::from_pem(&impostor.cert_pem, impostor.key_pem())
        )))
        .await
        .is_err(),
        "an unpinned certificate must be refused"
    );

    // A peer share may deliver protocol messages but not ask for signatures...
    let (cert, key) = &cluster.files.shares[1];
    let peer = Identity::load(cert, key).unwrap();
    let mut as_peer = share_channel(&cluster_file, 0, &peer, Duration::from_secs(5)).unwrap();
    let denied = as_peer
        .sign_partial(SignPartialRequest {
            presignature_id: vec![0; 16],
            derivation_path: vec![],
            prehash: vec![0; 32],
            trace_id: String::new(),
        })
        .await
        .expect_err("a peer must not request partial signatures");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    // ... and the coordinator may not inject protocol messages as if it were a share.
    let mut as_coordinator =
        share_channel(&cluster_file, 0, &coordinator, Duration::from_secs(5)).unwrap();
    let denied = as_coordinator
        .deliver(ProtocolMessage {
            kind: SessionKind::Presign as i32,
            session_id: vec![1; 16],
            broadcast: true,
            payload: vec![],
        })
        .await
        .expect_err("the coordinator must not deliver protocol messages");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    // A share process also checks the server it talks to: pinning share 1's certificate for
    // share 0's address fails.
    let wrong_pin = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            &cluster_file.share(1).unwrap().cert_pem,
        ))
        .domain_name(share_name(0))
        .identity(tonic::transport::Identity::from_pem(
            &coordinator.cert_pem,
            coordinator.key_pem(),
        ));
    assert!(raw_call_status(endpoint(wrong_pin)).await.is_err());
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presignature_answers_once_and_never_again_after_a_restart() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _) = cluster_with_key(dir.path()).await;
    let config = cluster.client_config();
    let client = ThresholdClient::connect(&config).await.unwrap();
    client.presign([0, 1]).await.unwrap();
    client.presign([0, 1]).await.unwrap();

    let coordinator = Identity::load(&config.cert, &config.key).unwrap();
    let cluster_file = Cluster::load(&config.cluster).unwrap();
    let mut share0 = share_channel(&cluster_file, 0, &coordinator, Duration::from_secs(5)).unwrap();
    let held = share0
        .list_presignatures(ListPresignaturesRequest {})
        .await
        .unwrap()
        .into_inner()
        .presignatures;
    assert_eq!(held.len(), 2);
    let request = |id: &[u8], tag: u8| SignPartialRequest {
        presignature_id: id.to_vec(),
        derivation_path: vec![3],
        prehash: hash(tag).to_vec(),
        trace_id: "test".into(),
    };
    let first = held[0].presignature_id.clone();
    share0
        .sign_partial(request(&first, 1))
        .await
        .expect("first use answers");
    // Same id, same message or another: never answered twice.
    for tag in [1, 2] {
        let again = share0
            .sign_partial(request(&first, tag))
            .await
            .expect_err("a presignature must answer at most once");
        assert_eq!(again.code(), tonic::Code::NotFound);
    }

    // A restart: the unused presignature is gone with the process, not reloaded.
    let second = held[1].presignature_id.clone();
    cluster.restart(0).await.unwrap();
    let after = share0
        .list_presignatures(ListPresignaturesRequest {})
        .await
        .unwrap()
        .into_inner()
        .presignatures;
    assert!(
        after.is_empty(),
        "presignatures survived a restart: {after:?}"
    );
    for id in [&first, &second] {
        let refused = share0
            .sign_partial(request(id, 9))
            .await
            .expect_err("no presignature answers after a restart");
        assert_eq!(refused.code(), tonic::Code::NotFound);
    }
    // The coordinator copes: its pooled ids for pairs with share 0 are stale, it notices
    // and signs with fresh presignatures.
    let account = DerivationPath::account(3).unwrap();
    let sig = client.sign_prehash(&account, hash(42)).await.unwrap();
    assert_eq!(
        sig.recover_address(&hash(42)).unwrap(),
        client.address(&account).unwrap()
    );
    drop(client);
    cluster.shutdown().await.unwrap();
}

/// The share files a ceremony wrote (the cached test key's, installed as a share would keep
/// them): sealed (no secret bytes in the clear), opened only with the passphrase and only as
/// their own index, owner-only. That the primes are removed at commit is checked where the
/// ceremony runs in the test (`whole_key.rs`).
fn check_share_files(dir: &std::path::Path, outcome: &stratbox_threshold::KeygenOutcome) {
    let pass = Passphrase::new(PASSPHRASE).unwrap();
    let wrong = Passphrase::new("not the passphrase").unwrap();
    let files: Vec<_> = (0..3u16)
        .map(|i| {
            (
                i,
                share_file(&stratbox_threshold::local::data_dir(dir, i), i),
            )
        })
        .collect();
    let key = stratbox_threshold::insecure_export::reconstruct(
        &[(files[0].0, &files[0].1), (files[2].0, &files[2].1)],
        &pass,
    )
    .unwrap();
    assert_eq!(key.master_public(), outcome.key.shared_public_key);
    for (index, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        let secret =
            stratbox_threshold::insecure_export::share_secret(*index, path, &pass).unwrap();
        for needle in [
            secret.to_vec(),
            secret.iter().rev().copied().collect(),
            key.master_secret().to_vec(),
            key.master_secret().iter().rev().copied().collect(),
        ] {
            assert!(
                memchr::memmem::find(&bytes, &needle).is_none(),
                "share file {} holds secret bytes in the clear",
                path.display()
            );
        }
        assert!(matches!(
            stratbox_threshold::insecure_export::share_secret(*index, path, &wrong),
            Err(ThresholdError::Decrypt { .. })
        ));
        // A share file is bound to its index: opened as another share's, it does not decrypt.
        let other = (index + 1) % 3;
        assert!(matches!(
            stratbox_threshold::insecure_export::share_secret(other, path, &pass),
            Err(ThresholdError::Decrypt { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "share file readable by others");
        }
    }
}
