//! The registry on real databases (a fresh SQLite file and a fresh PostgreSQL database):
//! uploads and their refusals, versions, deployments and rollbacks with their revisions,
//! audit rows naming the operator, keys stored only as hashes; and the gRPC service's
//! authentication and watch stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use stratbox::compile::InProcessCompiler;
use stratbox_engine::Store;
use stratbox_proto::v1;
use stratbox_registry::admission::{self, Compiler};
use stratbox_registry::auth::{self, key_hash};
use stratbox_registry::{ProcessCompiler, Refusal, Registry, RegistryConfig, RegistryError};

const CAP: usize = 2 << 20;

fn pg_admin() -> String {
    stratbox_testenv::postgres_url()
}

/// A fresh database of one kind; dropped (PostgreSQL) or deleted (SQLite) by `Db::drop`.
struct Db {
    url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    async fn new(kind: &str) -> Db {
        match kind {
            "postgres" => {
                let name = format!("stratbox_reg_{}", hex::encode(rand::random::<[u8; 6]>()));
                stratbox_engine::store::create_postgres_database(&pg_admin(), &name)
                    .await
                    .expect("create the PostgreSQL test database");
                Db {
                    url: stratbox_engine::store::with_database(&pg_admin(), &name),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("tempdir");
                Db {
                    url: format!("sqlite://{}", dir.path().join("engine.db").display()),
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
        }
    }

    async fn cleanup(self) {
        if let Some(name) = &self.pg_name {
            let _ = stratbox_engine::store::drop_postgres_database(&pg_admin(), name).await;
        }
    }
}

async fn open(store: &Store) -> Registry {
    Registry::open(
        store.pool().clone(),
        store.backend(),
        RegistryConfig {
            max_component_bytes: CAP,
            ..RegistryConfig::default()
        },
        Arc::new(InProcessCompiler { max_bytes: CAP }),
    )
    .await
    .expect("open registry")
}

fn refusal(r: Result<v1::StrategyVersion, RegistryError>) -> Refusal {
    match r {
        Err(RegistryError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn count(store: &Store, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(store.pool())
        .await
        .expect("count")
        .try_get("n")
        .expect("n")
}

async fn lifecycle(kind: &str) {
    let db = Db::new(kind).await;
    let store = Store::connect(&db.url).await.expect("connect + migrate");
    let registry = open(&store).await;
    assert_eq!(registry.deployments().revision, 0);

    // Operators: the key is handed out once; only its sha256 is stored.
    let alice_key = auth::add_operator(store.pool(), "alice", "db:test", "t-add")
        .await
        .expect("add alice");
    let bob_key = auth::add_operator(store.pool(), "bob", "db:test", "t-add")
        .await
        .expect("add bob");
    assert!(
        auth::add_operator(store.pool(), "alice", "db:test", "t")
            .await
            .is_err(),
        "names are unique"
    );
    let stored: Vec<(String, String)> =
        sqlx::query("SELECT name, key_hash FROM operators ORDER BY name")
            .fetch_all(store.pool())
            .await
            .expect("operators")
            .iter()
            .map(|r| (r.get("name"), r.get("key_hash")))
            .collect();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0], ("alice".into(), key_hash(alice_key.expose())));
    assert_ne!(stored[0].1, alice_key.expose());
    assert!(
        !stored
            .iter()
            .any(|(_, h)| h.contains(alice_key.expose()) || h.contains(bob_key.expose()))
    );
    let alice = registry
        .authenticate(alice_key.expose())
        .await
        .expect("alice");
    assert_eq!(alice.name, "alice");
    let bob = registry.authenticate(bob_key.expose()).await.expect("bob");
    assert_eq!(bob.name, "bob");
    let wrong = hex::encode([7u8; 32]);
    assert!(matches!(
        registry.authenticate(&wrong).await,
        Err(RegistryError::Unauthenticated(_))
    ));
    assert!(matches!(
        registry.authenticate(&alice_key.expose()[..63]).await,
        Err(RegistryError::Unauthenticated(_))
    ));

    // Uploads: versions 1, 2 per name; identical bytes again return the existing version.
    let clamm = stratbox_strategies::bytes("clamm-maker").expect("clamm-maker");
    let momentum = stratbox_strategies::bytes("momentum").expect("momentum");
    let v1_ = registry
        .upload(&alice, "maker", &clamm, "t-up1")
        .await
        .expect("upload 1");
    assert_eq!(v1_.version, "1");
    assert_eq!(v1_.uploader, "alice");
    assert_eq!(v1_.size_bytes, clamm.len() as u64);
    assert!(
        v1_.world.starts_with("stratbox:strategy/strategy@0.1."),
        "{}",
        v1_.world
    );
    assert_eq!(v1_.sha256, stratbox_host::check::sha256_hex(&clamm));
    assert!(!v1_.stateful, "clamm-maker exports no save/restore");
    let v2_ = registry
        .upload(&bob, "maker", &momentum, "t-up2")
        .await
        .expect("upload 2");
    assert_eq!(v2_.version, "2");
    let again = registry
        .upload(&bob, "maker", &clamm, "t-up3")
        .await
        .expect("re-upload");
    assert_eq!(
        again.version, "1",
        "identical bytes return the existing version"
    );
    assert_eq!(again.uploader, "alice");
    let other = registry
        .upload(&alice, "other", &clamm, "t")
        .await
        .expect("same bytes, other name");
    assert_eq!(other.version, "1");
    assert_eq!(
        count(&store, "strategy_components").await,
        2,
        "content-addressed"
    );
    assert_eq!(
        registry.fetch_component(&v2_.sha256).await.expect("fetch"),
        momentum
    );
    assert!(matches!(
        registry.fetch_component(&"0".repeat(64)).await,
        Err(RegistryError::NotFound(_))
    ));

    // Refusals change nothing.
    let before_list = registry.list().await.expect("list");
    let before_audit = count(&store, "audit_log").await;
    let before_components = count(&store, "strategy_components").await;
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = refusal(registry.upload(&alice, "maker", &noise, "t").await);
    assert_eq!(r.kind(), "not_wasm", "{r}");
    let r = refusal(
        registry
            .upload(&alice, "maker", &clamm[..clamm.len() / 2], "t")
            .await,
    );
    assert_eq!(r.kind(), "truncated", "{r}");
    let r = refusal(
        registry
            .upload(&alice, "maker", b"\0asm\x01\0\0\0", "t")
            .await,
    );
    assert_eq!(r.kind(), "core_module", "{r}");
    assert!(r.to_string().contains("core wasm module"), "{r}");
    let other_world = stratbox_strategies::bytes("other-world").expect("other-world");
    let r = refusal(registry.upload(&alice, "maker", &other_world, "t").await);
    assert_eq!(r.kind(), "wrong_world", "{r}");
    let mut oversized = clamm.clone();
    oversized.resize(CAP + 1, 0);
    let r = refusal(registry.upload(&alice, "maker", &oversized, "t").await);
    assert_eq!(r.kind(), "oversized", "{r}");
    assert!(
        r.to_string()
            .contains(&format!("over the limit of {CAP} bytes")),
        "{r}"
    );
    assert!(matches!(
        registry.upload(&alice, "Bad Name", &clamm, "t").await,
        Err(RegistryError::Invalid(_))
    ));
    assert_eq!(registry.list().await.expect("list"), before_list);
    assert_eq!(count(&store, "audit_log").await, before_audit);
    assert_eq!(
        count(&store, "strategy_components").await,
        before_components
    );

    // Deployments: a global revision that only goes up, watched.
    let mut watch = registry.subscribe();
    let d1 = registry
        .deploy(&alice, "maker", Some(1), 2, r#"{"a":1}"#, "t-d1")
        .await
        .expect("deploy 1");
    assert_eq!(
        (d1.version.as_str(), d1.instances, d1.revision),
        ("1", 2, 1)
    );
    assert!(watch.has_changed().expect("open"));
    assert_eq!(watch.borrow_and_update().revision, 1);
    let same = registry
        .deploy(&alice, "maker", Some(1), 2, r#"{"a":1}"#, "t")
        .await
        .expect("same");
    assert_eq!(same.revision, 1, "deploying what runs changes nothing");
    assert!(!watch.has_changed().expect("open"));
    let d2 = registry
        .deploy(&bob, "maker", None, 3, "", "t-d2")
        .await
        .expect("deploy newest");
    assert_eq!(
        (d2.version.as_str(), d2.instances, d2.revision),
        ("2", 3, 2)
    );
    assert_eq!(d2.config_json, "{}");
    assert_eq!(d2.deployed_by, "bob");
    let o1 = registry
        .deploy(&alice, "other", None, 1, "{}", "t")
        .await
        .expect("deploy other");
    assert_eq!(o1.revision, 3);
    let d3 = registry
        .scale(&alice, "maker", 5, "t-s")
        .await
        .expect("scale");
    assert_eq!(
        (d3.version.as_str(), d3.instances, d3.revision),
        ("2", 5, 4)
    );
    let set = registry.deployments();
    assert_eq!(set.revision, 4);
    assert_eq!(set.deployments.len(), 2);
    assert_eq!(set.deployments[0], d3);
    assert_eq!(set.deployments[1], o1);
    assert_eq!(watch.borrow_and_update().revision, 4);

    let r1 = registry
        .rollback(&alice, "maker", "t-r1")
        .await
        .expect("rollback 1");
    assert_eq!(
        (r1.version.as_str(), r1.instances, r1.revision),
        ("2", 3, 5),
        "undoes the scale"
    );
    let r2 = registry
        .rollback(&alice, "maker", "t-r2")
        .await
        .expect("rollback 2");
    assert_eq!(
        (r2.version.as_str(), r2.instances, r2.revision),
        ("1", 2, 6)
    );
    assert_eq!(r2.config_json, r#"{"a":1}"#);
    let none = registry.rollback(&alice, "maker", "t").await;
    assert!(
        matches!(none, Err(RegistryError::Precondition(_))),
        "{none:?}"
    );

    assert!(matches!(
        registry
            .deploy(&alice, "maker", Some(9), 1, "{}", "t")
            .await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        registry
            .deploy(&alice, "maker", Some(1), 1, "{nope", "t")
            .await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(matches!(
        registry.deploy(&alice, "ghost", None, 1, "{}", "t").await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        registry.scale(&alice, "ghost", 1, "t").await,
        Err(RegistryError::Precondition(_))
    ));

    // Show: versions, deployments newest first, rollout reports.
    // A report about a deployment that does not exist (a version never deployed, or a
    // revision of another strategy) is refused and not shown.
    for (version, revision) in [("999", 6), ("1", 999), ("2", 6)] {
        assert!(
            matches!(
                registry
                    .report_rollout(
                        "h1",
                        v1::RolloutReport {
                            name: "maker".into(),
                            version: version.into(),
                            revision,
                            switched: true,
                            ..Default::default()
                        },
                    )
                    .await,
                Err(RegistryError::Invalid(_))
            ),
            "a report of {version}@{revision} was accepted"
        );
    }
    registry
        .report_rollout(
            "h1",
            v1::RolloutReport {
                host: "someone-else".into(),
                name: "maker".into(),
                version: "1".into(),
                revision: 6,
                switched: true,
                max_pause_ns: 41_000,
                markets: 3,
                instances: 2,
                ..Default::default()
            },
        )
        .await
        .expect("report");
    let shown = registry.show("maker").await.expect("show");
    assert_eq!(shown.versions.len(), 2);
    let revs: Vec<u64> = shown.deployments.iter().map(|d| d.revision).collect();
    assert_eq!(revs, vec![6, 5, 4, 2, 1]);
    assert_eq!(shown.rollouts.len(), 1);
    assert_eq!(
        shown.rollouts[0].host, "h1",
        "recorded under the key's host"
    );
    assert_eq!(shown.rollouts[0].max_pause_ns, 41_000);
    assert!(shown.rollouts[0].at_ms > 0);
    assert!(matches!(
        registry.show("ghost").await,
        Err(RegistryError::NotFound(_))
    ));

    // Audit: every change, with the operator and the trace id.
    let audit = registry.audit_of("maker").await.expect("audit");
    let rows: Vec<(&str, &str, &str, &str)> = audit
        .iter()
        .map(|a| {
            (
                a.actor.as_str(),
                a.action.as_str(),
                a.to_state.as_str(),
                a.trace_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("alice", "strategy_uploaded", "v1", "t-up1"),
            ("bob", "strategy_uploaded", "v2", "t-up2"),
            ("alice", "strategy_deploy", "v1 x2", "t-d1"),
            ("bob", "strategy_deploy", "v2 x3", "t-d2"),
            ("alice", "strategy_scale", "v2 x5", "t-s"),
            ("alice", "strategy_rollback", "v2 x3", "t-r1"),
            ("alice", "strategy_rollback", "v1 x2", "t-r2"),
        ]
    );
    assert_eq!(audit[4].from_state, "v2 x3");
    let op_audit: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'operator_added' AND actor = 'db:test'",
    )
    .fetch_one(store.pool())
    .await
    .expect("count")
    .get("n");
    assert_eq!(op_audit, 2);
    let leaked: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE detail LIKE $1")
        .bind(format!("%{}%", alice_key.expose()))
        .fetch_one(store.pool())
        .await
        .expect("count")
        .get("n");
    assert_eq!(leaked, 0, "keys never reach the audit log");

    // A restarted engine sees the same desired state.
    let reopened = open(&store).await;
    assert_eq!(*reopened.deployments(), *registry.deployments());
    assert_eq!(reopened.deployments().revision, 6);

    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn lifecycle_sqlite() {
    lifecycle("sqlite").await;
}

#[tokio::test]
async fn lifecycle_postgres() {
    lifecycle("postgres").await;
}

#[tokio::test]
async fn compile_step_is_time_limited_and_reports_failures() {
    let clamm = stratbox_strategies::bytes("clamm-maker").expect("clamm-maker");
    // A compiler that never finishes is killed at its timeout.
    let slow = ProcessCompiler {
        program: "sh".into(),
        args: vec!["-c".into(), "exec sleep 30".into(), "sh".into()],
        timeout: Duration::from_secs(1),
    };
    let started = Instant::now();
    let r = admission::admit(&clamm, CAP, &slow).await;
    assert!(
        matches!(r, Err(RegistryError::Refused(Refusal::CompileTimeout(d))) if d == Duration::from_secs(1)),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "killed, not awaited"
    );
    // A failing compiler's last stderr line is the reason.
    let failing = ProcessCompiler {
        program: "sh".into(),
        args: vec![
            "-c".into(),
            "echo noise >&2; echo 'error: cranelift said no' >&2; exit 3".into(),
            "sh".into(),
        ],
        timeout: Duration::from_secs(10),
    };
    match admission::admit(&clamm, CAP, &failing).await {
        Err(RegistryError::Refused(Refusal::Compile(m))) => assert_eq!(m, "cranelift said no"),
        other => panic!("{other:?}"),
    }
    // The compiler gets the exact bytes in its file.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("seen.wasm");
    let copying = ProcessCompiler {
        program: "sh".into(),
        args: vec![
            "-c".into(),
            format!("cp \"$1\" {}", copy.display()).into(),
            "sh".into(),
        ],
        timeout: Duration::from_secs(10),
    };
    copying.compile(&clamm).await.expect("compiles");
    assert_eq!(std::fs::read(&copy).expect("copy"), clamm);
    // A missing program is the engine's problem, not a refusal of the component.
    let missing = ProcessCompiler {
        program: "/nonexistent/stratbox".into(),
        args: vec![],
        timeout: Duration::from_secs(1),
    };
    assert!(matches!(
        missing.compile(&clamm).await,
        Err(RegistryError::Compiler(_))
    ));
    // Checks run before the compiler is ever started.
    let r = admission::admit(b"\0asm\x01\0\0\0", CAP, &missing).await;
    assert!(
        matches!(r, Err(RegistryError::Refused(Refusal::Check(_)))),
        "{r:?}"
    );
    // The in-process compiler accepts a catalog strategy.
    let admitted = admission::admit(&clamm, CAP, &InProcessCompiler { max_bytes: CAP })
        .await
        .expect("admitted");
    assert_eq!(admitted.report.size, clamm.len());
}

/// The gRPC service: keys required for changes, watch streams the desired state.
#[tokio::test]
async fn grpc_authentication_and_watch() {
    use stratbox_proto::v1::registry_client::RegistryClient;
    use tokio_stream::StreamExt;

    let db = Db::new("sqlite").await;
    let store = Store::connect(&db.url).await.expect("connect");
    let registry = open(&store).await;
    let key = auth::add_operator(store.pool(), "carol", "db:test", "t")
        .await
        .expect("add");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(stratbox_registry::routes(registry.clone()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                },
            ),
    );
    let mut client = RegistryClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let clamm = stratbox_strategies::bytes("clamm-maker").expect("clamm-maker");
    let upload = |key: Option<&str>| {
        let mut req = tonic::Request::new(v1::UploadStrategyRequest {
            trace: None,
            name: "maker".into(),
            component: clamm.clone(),
        });
        if let Some(k) = key {
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {k}").parse().expect("ascii"),
            );
        }
        req
    };
    let e = client
        .upload_strategy(upload(None))
        .await
        .expect_err("no key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .upload_strategy(upload(Some(&hex::encode([1u8; 32]))))
        .await
        .expect_err("wrong key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(
        client
            .list_strategies(v1::ListStrategiesRequest {})
            .await
            .expect("list")
            .into_inner()
            .versions
            .is_empty()
    );
    let v = client
        .upload_strategy(upload(Some(key.expose())))
        .await
        .expect("upload")
        .into_inner();
    assert_eq!((v.version.as_str(), v.uploader.as_str()), ("1", "carol"));
    let mut bad = upload(Some(key.expose()));
    bad.get_mut().component = b"\0asm\x01\0\0\0".to_vec();
    let e = client.upload_strategy(bad).await.expect_err("core module");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("core wasm module"), "{}", e.message());

    // Watching needs a key: a host's (it is then counted as watching) or an operator's.
    let e = client
        .watch_deployments(v1::WatchDeploymentsRequest { host: "h".into() })
        .await
        .expect_err("watching without a key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let host_key = auth::add_principal(
        store.pool(),
        "w-host",
        stratbox_engine::Role::Host,
        "db:test",
        "t",
    )
    .await
    .expect("add a host");
    let mut watch = tonic::Request::new(v1::WatchDeploymentsRequest { host: "h".into() });
    watch.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", host_key.expose())
            .parse()
            .expect("ascii"),
    );
    let mut stream = client
        .watch_deployments(watch)
        .await
        .expect("watch")
        .into_inner();
    let first = stream.next().await.expect("an item").expect("ok");
    assert_eq!(first.revision, 0);
    assert!(first.deployments.is_empty());
    let mut deploy = tonic::Request::new(v1::DeployRequest {
        trace: None,
        name: "maker".into(),
        version: String::new(),
        instances: 4,
        config_json: "{}".into(),
    });
    let e = client
        .deploy(tonic::Request::new(deploy.get_ref().clone()))
        .await
        .expect_err("no key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    deploy.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", key.expose()).parse().expect("ascii"),
    );
    let d = client.deploy(deploy).await.expect("deploy").into_inner();
    let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a change arrives")
        .expect("an item")
        .expect("ok");
    assert_eq!(next.revision, d.revision);
    assert_eq!(next.deployments, vec![d.clone()]);
    let shown = client
        .show_strategy(v1::ShowStrategyRequest {
            name: "maker".into(),
        })
        .await
        .expect("show")
        .into_inner();
    assert_eq!(shown.watching_hosts, vec!["w-host".to_owned()]);
    let e = client
        .fetch_component(v1::FetchComponentRequest {
            sha256: d.sha256.clone(),
        })
        .await
        .expect_err("fetching without a key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let mut fetch = tonic::Request::new(v1::FetchComponentRequest {
        sha256: d.sha256.clone(),
    });
    fetch.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", host_key.expose())
            .parse()
            .expect("ascii"),
    );
    let c = client
        .fetch_component(fetch)
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(c.bytes, clamm);

    // Shutdown ends the watch stream, so the server can drain.
    registry.shutdown();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "{end:?}");
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("join")
        .expect("serve");
    store.close().await;
    db.cleanup().await;
}

/// `req` with `authorization: Bearer <key>`.
fn keyed<T>(mut req: tonic::Request<T>, key: &str) -> tonic::Request<T> {
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii"),
    );
    req
}

/// The engine's operator actions over gRPC take the registry's operator keys: without a
/// key or with an unknown one they are refused and change nothing; with a key they are
/// done and audited under the key's operator, whatever name the request carries.
async fn engine_operator_actions(kind: &str) {
    use stratbox_proto::v1::trading_engine_client::TradingEngineClient;

    let db = Db::new(kind).await;
    let store = Store::connect(&db.url).await.expect("connect");
    let registry = open(&store).await;
    let key = auth::add_operator(store.pool(), "dave", "db:test", "t")
        .await
        .expect("add");
    let chain = stratbox_engine::ChainState::embedded().expect("embedded chain");
    let engine = stratbox_engine::Engine::start(
        store.clone(),
        chain,
        stratbox_engine::EngineSettings::default(),
    )
    .await
    .expect("engine");
    let listener = stratbox_engine::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let host_key = auth::add_principal(
        store.pool(),
        "host-1",
        stratbox_engine::Role::Host,
        "db:test",
        "t",
    )
    .await
    .expect("add a host");
    let server = tokio::spawn(stratbox_engine::server::serve_grpc_with_access(
        engine.clone(),
        stratbox_registry::routes(registry.clone()),
        Some(registry.access()),
        listener,
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    let mut client = TradingEngineClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let wrong = hex::encode([1u8; 32]);
    let kill = || {
        tonic::Request::new(v1::SetKillSwitchRequest {
            trace: None,
            reason: "drill".into(),
            operator: "mallory".into(),
            cancel_pending: false,
        })
    };

    // Engage: no key, wrong key, then dave's key naming someone else, then dave's.
    let e = client.set_kill_switch(kill()).await.expect_err("no key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .set_kill_switch(keyed(kill(), &wrong))
        .await
        .expect_err("wrong key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("unknown API key"), "{}", e.message());
    let e = client
        .set_kill_switch(keyed(kill(), key.expose()))
        .await
        .expect_err("the key is not mallory's");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // A host's key grants nothing an operator's does.
    let mut req = kill();
    req.get_mut().operator = String::new();
    let e = client
        .set_kill_switch(keyed(req, host_key.expose()))
        .await
        .expect_err("a host key");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(!engine.kill_switch().engaged);
    let mut req = kill();
    req.get_mut().operator = String::new();
    let k = client
        .set_kill_switch(keyed(req, key.expose()))
        .await
        .expect("engage")
        .into_inner();
    assert!(k.engaged);
    assert_eq!(k.operator, "dave");

    // Clear: the same.
    let clear = || {
        tonic::Request::new(v1::ClearKillSwitchRequest {
            trace: None,
            operator: String::new(),
        })
    };
    let e = client.clear_kill_switch(clear()).await.expect_err("no key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .clear_kill_switch(keyed(clear(), &wrong))
        .await
        .expect_err("wrong key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(engine.kill_switch().engaged, "still engaged");
    let k = client
        .clear_kill_switch(keyed(clear(), key.expose()))
        .await
        .expect("clear")
        .into_inner();
    assert!(!k.engaged);
    let audit = store.audit_for("kill_switch").await.expect("audit");
    let rows: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str()))
        .collect();
    assert_eq!(
        rows,
        vec![("dave", "kill_switch_set"), ("dave", "kill_switch_cleared")]
    );

    // Restore a halted strategy.
    engine.set_permission_level("maker", stratbox_engine::PermissionLevel::L0);
    let restore = || {
        tonic::Request::new(v1::RestoreStrategyRequest {
            trace: None,
            strategy: "maker".into(),
            level: "L1".into(),
        })
    };
    let e = client
        .restore_strategy(restore())
        .await
        .expect_err("no key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .restore_strategy(keyed(restore(), &wrong))
        .await
        .expect_err("wrong key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert_eq!(
        engine.permission_level("maker"),
        stratbox_engine::PermissionLevel::L0
    );
    let p = client
        .restore_strategy(keyed(restore(), key.expose()))
        .await
        .expect("restore")
        .into_inner();
    assert_eq!((p.level.as_str(), p.restored_by.as_str()), ("L1", "dave"));
    let audit = store.audit_for("strategy:maker").await.expect("audit");
    let last = audit.last().expect("a restore row");
    assert_eq!(
        (
            last.actor.as_str(),
            last.action.as_str(),
            last.from_state.as_str(),
            last.to_state.as_str()
        ),
        ("dave", "permission_level", "L0", "L1")
    );
    let p = client
        .get_permission(v1::GetPermissionRequest {
            trace: None,
            strategy: "maker".into(),
        })
        .await
        .expect("a read needs no key")
        .into_inner();
    assert_eq!(p.level, "L1");

    // The registry's host calls need a host key; an operator's is not one.
    let mut reg =
        stratbox_proto::v1::registry_client::RegistryClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
    let report = || v1::RolloutReport {
        host: "h-forged".into(),
        name: "maker".into(),
        version: "999".into(),
        revision: 1,
        switched: true,
        ..Default::default()
    };
    let e = reg
        .report_rollout(report())
        .await
        .expect_err("a report without a key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = reg
        .report_rollout(keyed(tonic::Request::new(report()), key.expose()))
        .await
        .expect_err("a report with an operator's key");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = reg
        .report_rollout(keyed(tonic::Request::new(report()), host_key.expose()))
        .await
        .expect_err("a report about a version never deployed");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // Revoking an operator takes effect at the next call.
    auth::revoke(
        store.pool(),
        "dave",
        stratbox_engine::Role::Operator,
        "db:test",
        "t",
    )
    .await
    .expect("revoke");
    let mut req = kill();
    req.get_mut().operator = String::new();
    let e = client
        .set_kill_switch(keyed(req, key.expose()))
        .await
        .expect_err("a revoked key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(!engine.kill_switch().engaged);

    registry.shutdown();
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("join")
        .expect("serve");
    store.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_operator_actions_sqlite() {
    engine_operator_actions("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_operator_actions_postgres() {
    engine_operator_actions("postgres").await;
}

/// Chunked uploads: judged by the registry's cap alone, refused as a whole upload of the
/// same bytes is, before the bytes are read when the header says too much; malformed
/// streams are refused; none of it changes anything. A component in pieces is stored like
/// one sent whole.
#[tokio::test]
async fn grpc_chunked_upload() {
    use stratbox_proto::v1::registry_client::RegistryClient;
    use v1::upload_chunk::Part;

    let db = Db::new("sqlite").await;
    let store = Store::connect(&db.url).await.expect("connect");
    let registry = open(&store).await;
    let key = auth::add_operator(store.pool(), "erin", "db:test", "t")
        .await
        .expect("add");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(stratbox_registry::routes(registry.clone()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                },
            ),
    );
    let mut client = RegistryClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let clamm = stratbox_strategies::bytes("clamm-maker").expect("clamm-maker");
    let header = |size: usize| v1::UploadChunk {
        part: Some(Part::Header(v1::UploadHeader {
            trace: None,
            name: "maker".into(),
            size_bytes: size as u64,
        })),
    };
    let data = |bytes: &[u8]| v1::UploadChunk {
        part: Some(Part::Data(bytes.to_vec())),
    };
    let pieces =
        |bytes: &[u8]| -> Vec<v1::UploadChunk> { bytes.chunks(64 << 10).map(data).collect() };
    let send = |chunks: Vec<v1::UploadChunk>, key: Option<&str>| {
        let req = tonic::Request::new(futures::stream::iter(chunks));
        match key {
            Some(k) => keyed(req, k),
            None => req,
        }
    };
    let versions = async |client: &mut RegistryClient<tonic::transport::Channel>| {
        client
            .list_strategies(v1::ListStrategiesRequest {})
            .await
            .expect("list")
            .into_inner()
            .versions
            .len()
    };

    // No key: refused before anything is read.
    let mut whole = vec![header(clamm.len())];
    whole.extend(pieces(&clamm));
    let e = client
        .upload_strategy_chunks(send(whole.clone(), None))
        .await
        .expect_err("no key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");

    // Over the cap: the size refusal of a whole upload, from the header alone (18 MB of
    // data need not follow: none is sent here).
    let big = 18_000_000;
    let e = client
        .upload_strategy_chunks(send(vec![header(big)], Some(key.expose())))
        .await
        .expect_err("oversized");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let whole_refusal = admission::check_size(big, CAP).expect_err("over the cap");
    assert_eq!(e.message(), whole_refusal.to_string());
    assert!(
        e.message().contains(&format!(
            "file is {big} bytes, over the limit of {CAP} bytes"
        )),
        "{}",
        e.message()
    );

    // Malformed streams.
    let short = vec![header(clamm.len()), data(&clamm[..1000])];
    let mut long = vec![header(1000)];
    long.extend(pieces(&clamm));
    let cases = [
        (vec![data(&clamm)], "starts with its header"),
        (Vec::new(), "starts with its header"),
        (short, "ended after 1000 of the"),
        (long, "more than the 1000 bytes it announced"),
        (vec![header(10), header(10)], "one header, first"),
    ];
    for (chunks, reason) in cases {
        let e = client
            .upload_strategy_chunks(send(chunks, Some(key.expose())))
            .await
            .expect_err(reason);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(reason), "{reason}: {}", e.message());
    }
    assert_eq!(
        versions(&mut client).await,
        0,
        "a refused upload stores nothing"
    );

    // In pieces, stored as the whole would be.
    let v = client
        .upload_strategy_chunks(send(whole, Some(key.expose())))
        .await
        .expect("upload")
        .into_inner();
    assert_eq!((v.version.as_str(), v.uploader.as_str()), ("1", "erin"));
    assert_eq!(v.sha256, stratbox_host::check::sha256_hex(&clamm));
    assert_eq!(v.size_bytes, clamm.len() as u64);
    assert_eq!(versions(&mut client).await, 1);

    let _ = stop_tx.send(true);
    registry.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    store.close().await;
    db.cleanup().await;
}
