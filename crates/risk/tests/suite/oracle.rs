use stratbox_risk::{Assessment, OracleConfig, OracleError, OracleGuard, ReasonCode, U256};

use super::common::{MARKET, agreeing_oracle, px};

fn code<T>(r: Result<T, stratbox_risk::Rejection>) -> Option<ReasonCode> {
    r.err().map(|r| r.code)
}

fn three(a: U256, b: U256, c: U256, block: u64) -> OracleGuard {
    let mut g = OracleGuard::new();
    for (s, p) in [("a", a), ("b", b), ("c", c)] {
        assert_eq!(g.update(MARKET, s, p, block), Ok(()));
    }
    g
}

#[test]
fn three_agreeing_sources_pass_with_their_median() {
    let cfg = OracleConfig::default();
    let mut g = three(px(-10), px(0), px(20), 100);
    assert_eq!(g.check(&cfg, MARKET, 100), Ok(px(0)));
    assert!(g.halt(MARKET).is_none());
}

#[test]
fn deviation_boundary_is_inclusive_and_exact() {
    let cfg = OracleConfig::default();
    // Exactly 50 bps either side of the median passes.
    let mut g = three(px(-50), px(0), px(50), 100);
    assert_eq!(g.check(&cfg, MARKET, 100), Ok(px(0)));
    // One raw unit (1e-18) beyond 50 bps fails.
    let mut g = three(px(-50), px(0), px(50) + U256::from(1u8), 100);
    assert_eq!(
        code(g.check(&cfg, MARKET, 100)),
        Some(ReasonCode::OracleDisagreement)
    );
    let mut g = three(px(-51), px(0), px(0), 100);
    assert_eq!(
        code(g.check(&cfg, MARKET, 100)),
        Some(ReasonCode::OracleDisagreement)
    );
}

#[test]
fn missing_source_is_refused_and_halts() {
    let cfg = OracleConfig::default();
    let mut g = OracleGuard::new();
    g.update(MARKET, "a", px(0), 100).ok();
    g.update(MARKET, "b", px(0), 100).ok();
    assert_eq!(
        g.assess(&cfg, MARKET, 100),
        Assessment::Missing {
            fresh: 2,
            required: 3
        }
    );
    assert_eq!(
        code(g.check(&cfg, MARKET, 100)),
        Some(ReasonCode::OracleMissing)
    );
    assert_eq!(
        g.halt(MARKET).map(|h| (h.code, h.at_block)),
        Some((ReasonCode::OracleMissing, 100))
    );
    assert_eq!(
        code(g.check(&cfg, MARKET, 100)),
        Some(ReasonCode::MarketHalted)
    );
    // The third source arrives: all quotes that agree must be newer than the halt, and
    // "a" and "b" are not, so the market stays halted...
    g.update(MARKET, "c", px(0), 101).ok();
    assert_eq!(
        code(g.check(&cfg, MARKET, 101)),
        Some(ReasonCode::MarketHalted)
    );
    // ...until every source has reported again.
    g.update(MARKET, "a", px(0), 102).ok();
    g.update(MARKET, "b", px(0), 102).ok();
    assert_eq!(g.check(&cfg, MARKET, 102), Ok(px(0)));
    assert!(g.halt(MARKET).is_none());
}

#[test]
fn unknown_market_is_refused_without_state() {
    let cfg = OracleConfig::default();
    let mut g = agreeing_oracle(100);
    assert_eq!(
        code(g.check(&cfg, "NOPE/USDC", 100)),
        Some(ReasonCode::OracleMissing)
    );
    // Not halted (no state was created), so the same code again rather than market_halted.
    assert_eq!(
        code(g.check(&cfg, "NOPE/USDC", 100)),
        Some(ReasonCode::OracleMissing)
    );
    assert!(g.halt("NOPE/USDC").is_none());
    assert!(g.check(&cfg, MARKET, 100).is_ok());
}

#[test]
fn disagreement_halts_and_recovers_on_a_fresh_agreeing_round() {
    let cfg = OracleConfig::default();
    let mut g = three(px(0), px(0), px(200), 100);
    assert_eq!(
        code(g.check(&cfg, MARKET, 100)),
        Some(ReasonCode::OracleDisagreement)
    );
    let r = g.check(&cfg, MARKET, 100);
    assert_eq!(code(r.clone()), Some(ReasonCode::MarketHalted));
    assert!(
        r.err()
            .is_some_and(|r| r.detail.contains("oracle_disagreement"))
    );
    // The outlier comes back into line; the other two have not re-reported.
    g.update(MARKET, "c", px(0), 101).ok();
    assert_eq!(
        code(g.check(&cfg, MARKET, 101)),
        Some(ReasonCode::MarketHalted)
    );
    // A fresh round that still disagrees keeps it halted.
    g.update(MARKET, "a", px(0), 102).ok();
    g.update(MARKET, "b", px(300), 102).ok();
    assert_eq!(
        code(g.check(&cfg, MARKET, 102)),
        Some(ReasonCode::MarketHalted)
    );
    // "b" comes back into line. "c" reported at 101, "a" at 102 and "b" at 103, all after
    // the halt at 100: a fresh agreeing round reopens the market.
    g.update(MARKET, "b", px(10), 103).ok();
    assert!(g.halt(MARKET).is_some());
    assert_eq!(g.check(&cfg, MARKET, 103), Ok(px(0)));
    assert!(g.halt(MARKET).is_none());
    // And a new failure halts again.
    g.update(MARKET, "a", px(-100), 104).ok();
    assert_eq!(
        code(g.check(&cfg, MARKET, 104)),
        Some(ReasonCode::OracleDisagreement)
    );
}

#[test]
fn without_halting_each_check_stands_alone() {
    let cfg = OracleConfig {
        halt_on_failure: false,
        ..OracleConfig::default()
    };
    let mut g = three(px(0), px(0), px(200), 100);
    assert_eq!(
        code(g.check(&cfg, MARKET, 100)),
        Some(ReasonCode::OracleDisagreement)
    );
    assert_eq!(
        code(g.check(&cfg, MARKET, 100)),
        Some(ReasonCode::OracleDisagreement)
    );
    g.update(MARKET, "c", px(0), 101).ok();
    assert_eq!(g.check(&cfg, MARKET, 101), Ok(px(0)));
}

#[test]
fn stale_quotes_do_not_count() {
    let cfg = OracleConfig::default(); // max_age_blocks = 10
    let mut g = agreeing_oracle(100);
    assert!(g.check(&cfg, MARKET, 110).is_ok());
    let mut g = agreeing_oracle(100);
    assert_eq!(
        code(g.check(&cfg, MARKET, 111)),
        Some(ReasonCode::OracleMissing)
    );
    // A stale outlier is ignored if enough fresh sources remain.
    let mut g = agreeing_oracle(100);
    g.update(MARKET, "slow", px(900), 50).ok();
    assert_eq!(g.check(&cfg, MARKET, 100), Ok(px(0)));
    // A quote from a block the engine has not reached yet counts as fresh.
    let mut g = agreeing_oracle(105);
    assert!(g.check(&cfg, MARKET, 100).is_ok());
}

#[test]
fn even_number_of_sources_uses_the_middle_mean() {
    let cfg = OracleConfig::default();
    let mut g = OracleGuard::new();
    for (s, p) in [("a", px(-20)), ("b", px(0)), ("c", px(20)), ("d", px(30))] {
        g.update(MARKET, s, p, 1).ok();
    }
    assert_eq!(g.check(&cfg, MARKET, 1), Ok(px(10)));
}

#[test]
fn min_sources_is_configuration() {
    let cfg = OracleConfig {
        min_sources: 4,
        ..OracleConfig::default()
    };
    let mut g = agreeing_oracle(1);
    assert_eq!(
        code(g.check(&cfg, MARKET, 1)),
        Some(ReasonCode::OracleMissing)
    );
    let cfg1 = OracleConfig {
        min_sources: 1,
        max_deviation_bps: 0,
        ..OracleConfig::default()
    };
    let mut g = OracleGuard::new();
    g.update(MARKET, "a", px(0), 1).ok();
    assert!(g.check(&cfg1, MARKET, 1).is_ok());
}

#[test]
fn bad_updates_are_refused_and_change_nothing() {
    let cfg = OracleConfig::default();
    let mut g = agreeing_oracle(100);
    assert!(matches!(
        g.update(MARKET, "uniswap", U256::ZERO, 101),
        Err(OracleError::ZeroPrice { .. })
    ));
    assert!(matches!(
        g.update(MARKET, "uniswap", px(900), 99),
        Err(OracleError::OutOfOrder {
            block: 99,
            last: 100,
            ..
        })
    ));
    assert_eq!(
        g.update(MARKET, "", px(0), 101),
        Err(OracleError::EmptySource)
    );
    assert_eq!(g.check(&cfg, MARKET, 100), Ok(px(0)));
    for i in 3..stratbox_risk::MAX_SOURCES {
        assert_eq!(g.update(MARKET, &format!("s{i}"), px(0), 100), Ok(()));
    }
    assert_eq!(
        g.update(MARKET, "one-too-many", px(0), 100),
        Err(OracleError::TooManySources)
    );
    // Same block replaces the quote.
    assert_eq!(g.update(MARKET, "uniswap", px(1), 100), Ok(()));
}

#[test]
fn extreme_prices_do_not_overflow() {
    let cfg = OracleConfig::default();
    let mut g = three(U256::MAX, U256::MAX, U256::MAX, 1);
    assert_eq!(g.check(&cfg, MARKET, 1), Ok(U256::MAX));
    let mut g = three(U256::from(1u8), U256::MAX, U256::MAX, 1);
    assert_eq!(
        code(g.check(&cfg, MARKET, 1)),
        Some(ReasonCode::OracleDisagreement)
    );
    let mut g = three(U256::from(1u8), U256::from(1u8), U256::MAX, u64::MAX);
    assert_eq!(
        code(g.check(&cfg, MARKET, 0)),
        Some(ReasonCode::OracleDisagreement)
    );
}

#[test]
fn keyed_by_any_hashable_market() {
    let cfg = OracleConfig::default();
    let pool = [0xabu8; 20];
    let mut g: OracleGuard<[u8; 20]> = OracleGuard::new();
    for s in ["a", "b", "c"] {
        g.update(&pool, s, px(0), 7).ok();
    }
    assert_eq!(g.check(&cfg, &pool, 7), Ok(px(0)));
    assert_eq!(
        code(g.check(&cfg, &[0u8; 20], 7)),
        Some(ReasonCode::OracleMissing)
    );
}

#[test]
fn with_a_spot_every_source_is_compared_with_the_traded_price() {
    let cfg = OracleConfig::default();
    // Three sources agreeing among themselves, the pool's spot 1% away: the pool has been
    // pushed off the market, which the median alone would never see.
    let mut g = three(px(0), px(0), px(0), 100);
    assert_eq!(g.check(&cfg, MARKET, 100), Ok(px(0)));
    g.set_spot(MARKET, px(100), 100).ok();
    assert_eq!(
        g.assess(&cfg, MARKET, 100),
        Assessment::Disagree {
            median_e18: px(0),
            against_e18: px(100),
            worst_e18: px(0),
            deviation_bps: stratbox_risk::ratio::ratio_bps(px(100) - px(0), px(100)),
        }
    );
    let refused = g.check(&cfg, MARKET, 100).expect_err("spot 1% off");
    assert_eq!(refused.code, ReasonCode::OracleDisagreement);
    assert!(refused.detail.contains("pool's spot"), "{}", refused.detail);
    // Exactly 50 bps of the spot passes, one raw unit more does not; sources that are 80
    // bps apart pass when each is within 50 of the spot.
    let spot = px(0);
    let fifty = spot * U256::from(50u8) / U256::from(10_000u16);
    let mut g = three(spot - fifty, spot, spot + fifty, 100);
    g.set_spot(MARKET, spot, 100).ok();
    assert_eq!(g.check(&cfg, MARKET, 100), Ok(spot));
    let mut g = three(spot - fifty, spot, spot + fifty + U256::from(1u8), 100);
    g.set_spot(MARKET, spot, 100).ok();
    assert_eq!(
        code(g.check(&cfg, MARKET, 100)),
        Some(ReasonCode::OracleDisagreement)
    );
}

#[test]
fn a_stale_spot_is_missing() {
    let cfg = OracleConfig::default();
    let mut g = three(px(0), px(0), px(0), 100);
    g.set_spot(MARKET, px(0), 90).ok();
    assert!(matches!(
        g.assess(&cfg, MARKET, 100),
        Assessment::Agree { .. }
    ));
    // Ten blocks is the limit; the sources stay fresh, the spot does not.
    let mut g2 = g.clone();
    g2.update(MARKET, "a", px(0), 101).ok();
    g2.update(MARKET, "b", px(0), 101).ok();
    g2.update(MARKET, "c", px(0), 101).ok();
    let refused = g2.check(&cfg, MARKET, 101).expect_err("spot 11 blocks old");
    assert_eq!(refused.code, ReasonCode::OracleMissing);
    assert!(refused.detail.contains("spot"), "{}", refused.detail);
    // An older spot than the one held is ignored.
    g.set_spot(MARKET, px(900), 80).ok();
    assert_eq!(g.check(&cfg, MARKET, 100), Ok(px(0)));
}

#[test]
fn a_stale_source_counts_as_absent_is_named_and_recovers_on_a_fresh_round() {
    let cfg = OracleConfig::default();
    let mut g = three(px(0), px(0), px(0), 100);
    g.set_spot(MARKET, px(0), 100).ok();
    assert_eq!(
        g.mark_stale(MARKET, "b", "updatedAt 400 s ago, more than 300"),
        Ok(())
    );
    let refused = g.check(&cfg, MARKET, 100).expect_err("b is stale");
    assert_eq!(refused.code, ReasonCode::OracleMissing);
    assert!(
        refused
            .detail
            .contains("b (updatedAt 400 s ago, more than 300)"),
        "{}",
        refused.detail
    );
    assert_eq!(
        g.halt(MARKET).map(|h| h.code),
        Some(ReasonCode::OracleMissing)
    );
    // b reports again, but a and c have not since the halt: still halted.
    g.update(MARKET, "b", px(0), 101).ok();
    assert_eq!(
        code(g.check(&cfg, MARKET, 101)),
        Some(ReasonCode::MarketHalted)
    );
    g.update(MARKET, "a", px(0), 102).ok();
    g.update(MARKET, "c", px(0), 102).ok();
    g.set_spot(MARKET, px(0), 102).ok();
    assert_eq!(g.check(&cfg, MARKET, 102), Ok(px(0)));
    // A source marked stale before it ever quoted takes a slot and counts as absent.
    let mut g = OracleGuard::new();
    assert_eq!(g.mark_stale(MARKET, "feed", "no answer"), Ok(()));
    assert_eq!(
        g.assess(&cfg, MARKET, 1),
        Assessment::Missing {
            fresh: 0,
            required: 3
        }
    );
    assert_eq!(g.mark_stale(MARKET, "", "x"), Err(OracleError::EmptySource));
}
