use stratbox_risk::{
    DayOutcome, DayResult, ExecutionMode, PermissionConfig, PermissionError, PermissionLevel as L,
    PermissionTracker, ReasonCode, TradeOutcome as T, TransitionCause, U256, check_level,
};

fn cfg() -> PermissionConfig {
    PermissionConfig::default()
}

fn win_day(day: u32) -> DayResult {
    DayResult {
        day,
        outcome: DayOutcome::Win,
        return_ppb: 1_000_000, // +0.1%
    }
}

/// Good days with some spread: Sharpe far above 1.5.
fn good_day(day: u32) -> DayResult {
    DayResult {
        day,
        outcome: DayOutcome::Win,
        return_ppb: if day.is_multiple_of(2) {
            2_000_000
        } else {
            1_000_000
        },
    }
}

fn bad_day(day: u32) -> DayResult {
    DayResult {
        day,
        outcome: DayOutcome::Loss,
        return_ppb: if day.is_multiple_of(2) {
            -2_000_000
        } else {
            -1_000_000
        },
    }
}

fn trades(t: &mut PermissionTracker, c: &PermissionConfig, won: u32, lost: u32) -> Option<L> {
    let mut last = None;
    for _ in 0..won {
        if let Some(tr) = t.record_trade(c, T::Won) {
            last = Some(tr.to);
        }
    }
    for _ in 0..lost {
        if let Some(tr) = t.record_trade(c, T::Lost) {
            last = Some(tr.to);
        }
    }
    last
}

#[test]
fn starts_at_l1() {
    let t = PermissionTracker::new(&cfg());
    assert_eq!(t.level(), L::L1);
    assert!(!t.requires_human());
}

#[test]
fn l1_to_l2_after_seven_days_at_fifty_percent() {
    let c = cfg();
    let mut t = PermissionTracker::new(&c);
    assert_eq!(trades(&mut t, &c, 1, 1), None); // exactly 50%
    for d in 1..=6 {
        assert_eq!(t.record_day(&c, bad_day(d)), Ok(None), "day {d}");
    }
    let tr = t.record_day(&c, bad_day(7)).ok().flatten();
    assert_eq!(
        tr.as_ref().map(|t| (t.from, t.to, t.cause.clone())),
        Some((L::L1, L::L2, TransitionCause::Promotion))
    );
    assert_eq!(tr.map(|t| t.stats.days), Some(7));
    assert_eq!(t.level(), L::L2);
    // The record starts afresh at the new level.
    assert_eq!(t.stats().days, 0);
    assert_eq!(t.stats().decided_trades(), 0);
}

#[test]
fn l1_stays_below_fifty_percent_or_without_trades() {
    let c = cfg();
    let mut t = PermissionTracker::new(&c);
    for d in 1..=10 {
        assert_eq!(t.record_day(&c, good_day(d)), Ok(None));
    }
    assert_eq!(t.level(), L::L1, "no trades means no win rate");
    trades(&mut t, &c, 4_999, 5_001);
    assert_eq!(t.record_day(&c, good_day(11)), Ok(None));
    assert_eq!(t.level(), L::L1);
    // One more win makes exactly 5000/10001 < 50%... and two make 5001/10002 >= 50%.
    trades(&mut t, &c, 1, 0);
    assert_eq!(t.record_day(&c, good_day(12)), Ok(None));
    trades(&mut t, &c, 1, 0);
    assert!(t.record_day(&c, good_day(13)).ok().flatten().is_some());
    assert_eq!(t.level(), L::L2);
    // Flat trades count in neither side.
    let mut u = PermissionTracker::new(&c);
    trades(&mut u, &c, 1, 1);
    u.record_trade(&c, T::Flat);
    assert_eq!(u.stats().win_rate_bps(), Some(5_000));
}

#[test]
fn l2_to_l3_after_thirty_days_at_sharpe_one() {
    let c = cfg();
    let mut t = PermissionTracker::at_level(L::L2);
    for d in 1..=29 {
        assert_eq!(t.record_day(&c, good_day(d)), Ok(None), "day {d}");
    }
    assert!(t.stats().sharpe(365).is_some_and(|s| s > 1.0));
    assert!(
        t.record_day(&c, good_day(30))
            .ok()
            .flatten()
            .is_some_and(|tr| tr.to == L::L3)
    );
    // Thirty losing days never promote.
    let mut u = PermissionTracker::at_level(L::L2);
    for d in 1..=60 {
        assert_eq!(u.record_day(&c, bad_day(d)), Ok(None));
    }
    assert_eq!(u.level(), L::L2);
}

#[test]
fn sharpe_is_annualised_mean_over_sample_sd_and_gates_exactly() {
    let c = cfg();
    let mut t = PermissionTracker::at_level(L::L2);
    // Returns 1, 2, 3 (ppb): mean 2, sample sd 1 -> Sharpe sqrt(365).
    for (d, r) in [(1, 1), (2, 2), (3, 3)] {
        let day = DayResult {
            day: d,
            outcome: DayOutcome::Win,
            return_ppb: r,
        };
        t.record_day(&c, day).ok();
    }
    let s = t.stats().sharpe(365).unwrap_or(f64::NAN);
    assert!((s - 2.0 * 365f64.sqrt()).abs() < 1e-9, "{s}");
    assert_eq!(t.stats().sharpe(1).map(|v| (v * 1e9).round()), Some(2e9));
    // Identical returns: zero spread, no Sharpe, no promotion.
    let mut u = PermissionTracker::at_level(L::L2);
    for d in 1..=40 {
        u.record_day(&c, win_day(d)).ok();
    }
    assert_eq!(u.stats().sharpe(365), None);
    assert_eq!(u.level(), L::L2);
    // Threshold just above the achieved Sharpe blocks promotion; at it, promotes.
    let mut strict = cfg();
    strict.sharpe_periods_per_year = 1;
    strict.promotion.l2_to_l3.min_days = 3;
    strict.promotion.l2_to_l3.min_sharpe = Some(2.000001);
    let mut v = PermissionTracker::at_level(L::L2);
    for (d, r) in [(1, 1), (2, 2), (3, 3)] {
        v.record_day(
            &strict,
            DayResult {
                day: d,
                outcome: DayOutcome::Win,
                return_ppb: r,
            },
        )
        .ok();
    }
    assert_eq!(v.level(), L::L2);
    strict.promotion.l2_to_l3.min_sharpe = Some(2.0);
    assert!(v.promotion_due(&strict));
}

#[test]
fn l3_to_l4_at_sixty_percent_and_sharpe_one_and_a_half() {
    let c = cfg();
    let mut t = PermissionTracker::at_level(L::L3);
    trades(&mut t, &c, 3, 2); // exactly 60%
    assert_eq!(
        t.record_day(&c, good_day(1)),
        Ok(None),
        "one day has no Sharpe"
    );
    assert!(
        t.record_day(&c, good_day(2))
            .ok()
            .flatten()
            .is_some_and(|tr| tr.to == L::L4)
    );
    // 59.99%: no.
    let mut u = PermissionTracker::at_level(L::L3);
    trades(&mut u, &c, 5_999, 4_001);
    for d in 1..=10 {
        assert_eq!(u.record_day(&c, good_day(d)), Ok(None));
    }
    // 60% but negative Sharpe: no.
    let mut w = PermissionTracker::at_level(L::L3);
    trades(&mut w, &c, 6, 4);
    for d in 1..=10 {
        assert_eq!(w.record_day(&c, bad_day(d)), Ok(None));
    }
}

#[test]
fn l4_to_l5_at_seventy_percent_and_twenty_winning_days() {
    let c = cfg();
    let mut t = PermissionTracker::at_level(L::L4);
    trades(&mut t, &c, 7, 3);
    for d in 1..=19 {
        assert_eq!(t.record_day(&c, good_day(d)), Ok(None));
    }
    assert!(
        t.record_day(&c, good_day(20))
            .ok()
            .flatten()
            .is_some_and(|tr| tr.to == L::L5)
    );
    // A flat day breaks the streak.
    let mut u = PermissionTracker::at_level(L::L4);
    trades(&mut u, &c, 7, 3);
    for d in 1..=19 {
        u.record_day(&c, good_day(d)).ok();
    }
    let flat = DayResult {
        day: 20,
        outcome: DayOutcome::Flat,
        return_ppb: 0,
    };
    assert_eq!(u.record_day(&c, flat), Ok(None));
    assert_eq!(u.stats().winning_day_streak, 0);
    for d in 21..=39 {
        assert_eq!(u.record_day(&c, good_day(d)), Ok(None));
    }
    assert!(u.record_day(&c, good_day(40)).ok().flatten().is_some());
    // 20 winning days at 69.99% do not promote.
    let mut w = PermissionTracker::at_level(L::L4);
    trades(&mut w, &c, 6_999, 3_001);
    for d in 1..=25 {
        assert_eq!(w.record_day(&c, good_day(d)), Ok(None));
    }
    // Gaps in day numbers neither count nor break the streak.
    let mut g = PermissionTracker::at_level(L::L4);
    trades(&mut g, &c, 7, 3);
    for d in 1..=20 {
        g.record_day(&c, good_day(d * 3)).ok();
    }
    assert_eq!(g.level(), L::L5);
    assert_eq!(t.level(), L::L5);
    assert_eq!(t.stats().winning_day_streak, 0);
}

#[test]
fn l5_has_no_promotion() {
    let c = cfg();
    let mut t = PermissionTracker::at_level(L::L5);
    trades(&mut t, &c, 100, 0);
    for d in 1..=50 {
        assert_eq!(t.record_day(&c, good_day(d)), Ok(None));
    }
    assert_eq!(t.level(), L::L5);
}

#[test]
fn win_rate_demotions_at_sixty_five_fifty_five_forty_five() {
    let c = cfg();
    for (from, to, floor_won) in [(L::L5, L::L4, 13u32), (L::L4, L::L3, 11), (L::L3, L::L2, 9)] {
        // At exactly the floor (13/20 = 65%, 11/20 = 55%, 9/20 = 45%) the level holds.
        let mut t = PermissionTracker::at_level(from);
        assert_eq!(
            trades(&mut t, &c, floor_won, 20 - floor_won),
            None,
            "{from}"
        );
        assert_eq!(t.level(), from);
        // One more loss takes it strictly below.
        let tr = t.record_trade(&c, T::Lost);
        assert_eq!(tr.as_ref().map(|t| (t.from, t.to)), Some((from, to)));
        assert_eq!(tr.map(|t| t.cause), Some(TransitionCause::WinRateDemotion));
        assert_eq!(t.stats().decided_trades(), 0);
    }
}

#[test]
fn win_rate_demotion_waits_for_min_trades() {
    let c = cfg(); // min_trades 10
    let mut t = PermissionTracker::at_level(L::L5);
    assert_eq!(trades(&mut t, &c, 0, 9), None);
    assert_eq!(t.level(), L::L5);
    assert_eq!(t.record_trade(&c, T::Lost).map(|t| t.to), Some(L::L4));
}

#[test]
fn l2_demotes_after_three_losses_in_a_row() {
    let c = cfg();
    let mut t = PermissionTracker::at_level(L::L2);
    assert_eq!(trades(&mut t, &c, 0, 2), None);
    assert_eq!(t.record_trade(&c, T::Won), None);
    assert_eq!(trades(&mut t, &c, 0, 2), None);
    assert_eq!(
        t.record_trade(&c, T::Flat),
        None,
        "a flat trade does not break the run"
    );
    let tr = t.record_trade(&c, T::Lost);
    assert_eq!(
        tr.map(|t| (t.to, t.cause)),
        Some((L::L1, TransitionCause::LosingStreakDemotion))
    );
    // L1 has no demotion rule.
    assert_eq!(trades(&mut t, &c, 0, 10), None);
    assert_eq!(t.level(), L::L1);
}

#[test]
fn demotion_rules_are_configuration() {
    let mut c = cfg();
    c.demotion.l4.losing_trade_streak = Some(2);
    let mut t = PermissionTracker::at_level(L::L4);
    assert_eq!(trades(&mut t, &c, 0, 2), Some(L::L3));
    // Default L4 has no streak rule: 5 losses in a row after 20 wins keep it (20/25 = 80%).
    let d = cfg();
    let mut u = PermissionTracker::at_level(L::L4);
    assert_eq!(trades(&mut u, &d, 20, 5), None);
}

#[test]
fn breach_drops_to_l0_until_a_human_restores() {
    let c = cfg();
    let mut t = PermissionTracker::at_level(L::L4);
    let tr = t.on_hard_limit_breach(ReasonCode::LimitDrawdown, 1_000);
    assert_eq!(
        tr.map(|t| (t.from, t.to, t.cause)),
        Some((
            L::L4,
            L::L0,
            TransitionCause::HardLimitBreach {
                code: ReasonCode::LimitDrawdown
            }
        ))
    );
    assert!(t.requires_human());
    assert_eq!(
        t.breach().map(|b| (b.code, b.at_ms)),
        Some((ReasonCode::LimitDrawdown, 1_000))
    );
    // Nothing automatic leaves L0, and L0 may not trade.
    trades(&mut t, &c, 100, 0);
    for d in 1..=60 {
        assert_eq!(t.record_day(&c, good_day(d)), Ok(None));
    }
    assert_eq!(t.level(), L::L0);
    assert_eq!(
        t.check(&c, ExecutionMode::Shadow).map_err(|r| r.code),
        Err(ReasonCode::PermissionLevel)
    );
    // A second breach while halted is recorded but is no transition.
    assert_eq!(
        t.on_hard_limit_breach(ReasonCode::LimitDailyLoss, 2_000),
        None
    );
    // Restore: only to L1 by default, only by a named operator.
    assert_eq!(
        t.restore(&c, L::L3, "alice", 3_000),
        Err(PermissionError::RestoreLevel {
            requested: L::L3,
            max: L::L1
        })
    );
    assert!(matches!(
        t.restore(&c, L::L0, "alice", 3_000),
        Err(PermissionError::RestoreLevel { .. })
    ));
    assert_eq!(
        t.restore(&c, L::L1, "  ", 3_000),
        Err(PermissionError::NoOperator)
    );
    let tr = t.restore(&c, L::L1, "alice", 3_000);
    assert_eq!(
        tr.map(|t| (t.from, t.to, t.cause)),
        Ok((
            L::L0,
            L::L1,
            TransitionCause::HumanRestore {
                operator: "alice".into()
            }
        ))
    );
    assert_eq!(t.level(), L::L1);
    assert!(!t.requires_human());
    assert_eq!(t.breach(), None);
    assert_eq!(t.restored_by(), Some(("alice", 3_000)));
    assert_eq!(t.stats().days, 0, "the record starts afresh");
    assert_eq!(
        t.restore(&c, L::L1, "bob", 4_000),
        Err(PermissionError::NotHalted(L::L1))
    );
    // A wider restore ceiling is configuration.
    let mut wide = cfg();
    wide.max_restore_level = L::L3;
    let mut u = PermissionTracker::at_level(L::L2);
    u.on_hard_limit_breach(ReasonCode::LimitLeverage, 1);
    assert!(u.restore(&wide, L::L3, "carol", 2).is_ok());
}

#[test]
fn every_level_can_breach() {
    for level in [L::L1, L::L2, L::L3, L::L4, L::L5] {
        let mut t = PermissionTracker::at_level(level);
        assert!(
            t.on_hard_limit_breach(ReasonCode::LimitExposure, 0)
                .is_some()
        );
        assert_eq!(t.level(), L::L0);
    }
}

#[test]
fn days_must_increase_and_a_refused_day_changes_nothing() {
    let c = cfg();
    let mut t = PermissionTracker::new(&c);
    assert_eq!(t.record_day(&c, good_day(5)), Ok(None));
    let before = t.clone();
    assert_eq!(
        t.record_day(&c, good_day(5)),
        Err(PermissionError::DayOutOfOrder { day: 5, last: 5 })
    );
    assert_eq!(
        t.record_day(&c, good_day(4)),
        Err(PermissionError::DayOutOfOrder { day: 4, last: 5 })
    );
    assert_eq!(t, before);
}

#[test]
fn mode_ceiling_per_level() {
    let c = cfg();
    let m = |l, r| check_level(&c, l, r).map_err(|e| e.code);
    assert_eq!(
        m(L::L0, ExecutionMode::Shadow),
        Err(ReasonCode::PermissionLevel)
    );
    assert_eq!(m(L::L1, ExecutionMode::Live), Ok(ExecutionMode::Shadow));
    assert_eq!(m(L::L2, ExecutionMode::Live), Ok(ExecutionMode::Staged));
    assert_eq!(m(L::L3, ExecutionMode::Live), Ok(ExecutionMode::Live));
    assert_eq!(m(L::L5, ExecutionMode::Shadow), Ok(ExecutionMode::Shadow));
    assert_eq!(m(L::L4, ExecutionMode::Staged), Ok(ExecutionMode::Staged));
}

#[test]
fn day_result_from_exact_amounts() {
    let d = DayResult::from_pnl(1, U256::from(5u64), false, U256::from(1_000u64));
    assert_eq!((d.outcome, d.return_ppb), (DayOutcome::Win, 5_000_000));
    let d = DayResult::from_pnl(1, U256::from(5u64), true, U256::from(1_000u64));
    assert_eq!((d.outcome, d.return_ppb), (DayOutcome::Loss, -5_000_000));
    let d = DayResult::from_pnl(1, U256::ZERO, true, U256::from(1_000u64));
    assert_eq!((d.outcome, d.return_ppb), (DayOutcome::Flat, 0));
    // A tiny win still counts as a winning day even if its ppb rounds to zero.
    let d = DayResult::from_pnl(1, U256::from(1u64), false, U256::MAX);
    assert_eq!((d.outcome, d.return_ppb), (DayOutcome::Win, 0));
    let d = DayResult::from_pnl(1, U256::MAX, true, U256::from(1u64));
    assert_eq!(d.return_ppb, -i64::MAX);
    let d = DayResult::from_pnl(1, U256::MAX, false, U256::ZERO);
    assert_eq!((d.outcome, d.return_ppb), (DayOutcome::Win, 0));
}

#[test]
fn tracker_round_trips_through_serde() {
    let c = cfg();
    let mut t = PermissionTracker::at_level(L::L3);
    trades(&mut t, &c, 3, 1);
    t.record_day(&c, good_day(1)).ok();
    let json = serde_json::to_string(&t).unwrap_or_default();
    let back: Result<PermissionTracker, _> = serde_json::from_str(&json);
    assert_eq!(back.ok(), Some(t));
}
