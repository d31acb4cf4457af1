//! Shared by the engine's tests: a real database per test (a fresh SQLite file, or a fresh
//! PostgreSQL database created on the local server and dropped afterwards), an engine over
//! the embedded revm chain, and proposal builders.

#![allow(dead_code, unused_macros, clippy::too_many_arguments)]

use std::path::PathBuf;

use sqlx::Connection;
use stratbox_engine::ChainState;
use stratbox_engine::gates::spot_price_e18;
use stratbox_engine::proposal::{Address, TradeAction, hex_address};
use stratbox_engine::{Engine, EngineSettings, SimOutcome, Store, market_key};
use stratbox_proto::U256;
use stratbox_proto::v1::{self, proposal::Action};

/// Runs `async fn $name(&Db)` as two tests, `$name::sqlite` and `$name::postgres`, each on
/// a fresh database it cleans up after.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::sqlite().await;
                super::$name(&db).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = super::postgres().await;
                super::$name(&db).await;
                db.cleanup().await;
            }
        }
    };
}

/// `n * 10^exp` raw units.
pub fn e(n: u64, exp: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(exp))
}

/// The PostgreSQL server the tests' databases are made on (`STRATBOX_TEST_POSTGRES`);
/// the test fails, naming it, when it is not there.
pub fn pg_admin() -> String {
    stratbox_testenv::postgres_url()
}

pub enum Db {
    Sqlite {
        dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        name: String,
    },
}

impl Db {
    pub fn url(&self) -> String {
        match self {
            Db::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            Db::Postgres { name } => stratbox_testenv::postgres_database_url(&pg_admin(), name),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres { .. } => "postgres",
        }
    }

    /// Drops the PostgreSQL database (SQLite's directory goes with the TempDir).
    pub async fn cleanup(self) {
        if let Db::Postgres { name } = &self
            && let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin()).await
        {
            {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        }
    }
}

pub async fn sqlite() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("engine.db");
    Db::Sqlite { dir, path }
}

pub async fn postgres() -> Db {
    let name = format!("stratbox_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    let admin = pg_admin();
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL (STRATBOX_TEST_POSTGRES): {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .expect("create test database");
    Db::Postgres { name }
}

pub async fn db(kind: &str) -> Db {
    match kind {
        "postgres" => postgres().await,
        _ => sqlite().await,
    }
}

/// An engine on the embedded chain, with three agreeing oracle sources at the pool's price.
pub async fn engine(db: &Db) -> Engine {
    engine_with(db, EngineSettings::default()).await
}

pub async fn engine_with(db: &Db, settings: EngineSettings) -> Engine {
    let store = Store::connect(&db.url()).await.expect("store");
    let chain = ChainState::embedded().expect("embedded chain");
    let engine = Engine::start(store, chain, settings).await.expect("engine");
    feed_oracles(&engine, 0);
    engine
}

pub fn pool(engine: &Engine) -> Address {
    engine.chain().pools()[0]
}

/// Feeds sources a, b, c at the pool's spot price; `skew_bps` moves source c.
pub fn feed_oracles(engine: &Engine, skew_bps: i64) {
    let p = pool(engine);
    let info = engine.chain().pool(&p).expect("pool info");
    let price = spot_price_e18(info.sqrt_price_x96);
    let market = market_key(&info.token0, &info.token1);
    engine.update_oracle(&market, "a", price);
    engine.update_oracle(&market, "b", price);
    let skewed = if skew_bps >= 0 {
        price + price * U256::from(skew_bps as u64) / U256::from(10_000u64)
    } else {
        price - price * U256::from((-skew_bps) as u64) / U256::from(10_000u64)
    };
    engine.update_oracle(&market, "c", skewed);
}

pub fn amount(v: U256) -> Option<v1::Amount> {
    Some(v1::Amount {
        value: v.to_string(),
    })
}

pub fn address(a: &Address) -> Option<v1::Address> {
    Some(v1::Address {
        value: hex_address(a),
    })
}

/// What the chain says a swap returns right now (from the account's simulation address).
/// Quoted at gas price 0, as a strategy quotes with the SDK's math: the amounts do not
/// depend on the gas price, and a test may have set one nobody could pay.
pub fn quote(engine: &Engine, account: &str, action: &TradeAction) -> SimOutcome {
    let from = stratbox_engine::sim_address(account);
    engine
        .chain()
        .with_gas_price(U256::ZERO)
        .simulate(from, action, true)
        .expect("simulate")
}

pub fn swap_action(pool: Address, zero_for_one: bool, amount_in: U256) -> TradeAction {
    TradeAction::Swap {
        pool,
        zero_for_one,
        amount_in,
        sqrt_price_limit_x96: None,
    }
}

/// A proposal for `action` expecting exactly `(e0, e1)`.
pub fn proposal(
    engine: &Engine,
    strategy: &str,
    event: &str,
    index: u32,
    action: &TradeAction,
    e0: U256,
    e1: U256,
    bps: u32,
) -> v1::Proposal {
    let act = match *action {
        TradeAction::Swap {
            pool,
            zero_for_one,
            amount_in,
            sqrt_price_limit_x96,
        } => Action::Swap(v1::SwapAction {
            pool: address(&pool),
            zero_for_one,
            amount_in: amount(amount_in),
            sqrt_price_limit_x96: sqrt_price_limit_x96.and_then(amount),
        }),
        TradeAction::AddLiquidity(r) => Action::AddLiquidity(v1::RangeLiquidity {
            pool: address(&r.pool),
            tick_lower: r.tick_lower,
            tick_upper: r.tick_upper,
            liquidity: amount(U256::from(r.liquidity)),
        }),
        TradeAction::RemoveLiquidity(r) => Action::RemoveLiquidity(v1::RangeLiquidity {
            pool: address(&r.pool),
            tick_lower: r.tick_lower,
            tick_upper: r.tick_upper,
            liquidity: amount(U256::from(r.liquidity)),
        }),
    };
    v1::Proposal {
        strategy: strategy.into(),
        strategy_version: "1.0.0".into(),
        instance_id: "i-1".into(),
        account: "acct-1".into(),
        event_id: event.into(),
        index,
        last_sync_block: engine.watermark(),
        action: Some(act),
        expected_amount0: amount(e0),
        expected_amount1: amount(e1),
        max_slippage_bps: bps,
        reason: "test".into(),
    }
}

/// A swap proposal whose expectation is what the chain quotes now (so it passes).
pub fn good_swap(engine: &Engine, event: &str, index: u32, amount_in: u64) -> v1::Proposal {
    let p = pool(engine);
    let a = swap_action(p, true, U256::from(amount_in));
    let q = quote(engine, "acct-1", &a);
    assert!(q.success, "quote reverted: {}", q.revert_reason);
    proposal(
        engine, "momentum", event, index, &a, q.amount0, q.amount1, 50,
    )
}

pub fn state(r: &v1::ProposalResult) -> v1::TaskState {
    v1::TaskState::try_from(r.state).unwrap_or(v1::TaskState::Unspecified)
}

pub async fn assert_ledger_balances(engine: &Engine) {
    engine
        .check_ledger()
        .await
        .expect("ledger balances per posting and per asset");
}

/// Keys for tests: `authorization: Bearer <key>` names the principal holding it, each in one
/// role (the registry's keys stand in for this in production; its own tests cover them). A
/// key of the other role is refused as the registry refuses it.
pub struct TestKeys(pub Vec<(&'static str, &'static str, stratbox_engine::Role)>);

impl stratbox_engine::Access for TestKeys {
    fn authenticate<'a>(
        &'a self,
        metadata: &'a tonic::metadata::MetadataMap,
        role: stratbox_engine::Role,
    ) -> stratbox_engine::access::AuthFuture<'a> {
        Box::pin(async move {
            let header = metadata
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| tonic::Status::unauthenticated("no key"))?;
            let (_, name, has) = self
                .0
                .iter()
                .find(|(key, _, _)| *key == header)
                .ok_or_else(|| tonic::Status::unauthenticated("unknown API key"))?;
            if *has != role {
                return Err(tonic::Status::permission_denied(format!(
                    "this call needs a {} key",
                    role.as_str()
                )));
            }
            Ok((*name).to_owned())
        })
    }
}

/// `message` with `authorization: Bearer <key>`.
pub fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii key"),
    );
    req
}

/// A buy of token0 for `amount_in` token1 by `strategy`, expecting what the chain quotes now.
pub fn buy(engine: &Engine, strategy: &str, event: &str, amount_in: U256) -> v1::Proposal {
    let a = swap_action(pool(engine), false, amount_in);
    let q = quote(engine, "acct-1", &a);
    assert!(q.success, "quote reverted: {}", q.revert_reason);
    proposal(engine, strategy, event, 0, &a, q.amount0, q.amount1, 50)
}

/// A whale sells token0 until the price is 1/1.5 of what it was (committed on the chain), and
/// the oracles follow: books holding token0 lose a third of its value.
pub fn crash(engine: &Engine) {
    const WHALE: [u8; 20] = [0x77; 20];
    let p = pool(engine);
    engine
        .update_chain(|chain| {
            let info = chain.pools()[0];
            chain
                .fund(WHALE.into(), info.token0, U256::from(1u8) << 200)
                .expect("fund whale");
            let state = chain.pool_state(p.into()).expect("pool state");
            let limit = state.sqrt_price_x96 * U256::from(10_000u64) / U256::from(12_247u64);
            let out = chain
                .execute(
                    WHALE.into(),
                    &stratbox_sim::Action::Swap {
                        pool: p.into(),
                        zero_for_one: true,
                        amount_in: U256::from(1u8) << 120,
                        sqrt_price_limit_x96: Some(limit),
                    },
                )
                .expect("whale swap");
            assert!(out.outcome.success, "{:?}", out.outcome.revert_reason);
            chain.next_block();
        })
        .expect("chain update");
    feed_oracles(engine, 0);
}
