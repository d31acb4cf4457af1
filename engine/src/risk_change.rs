//! What a change of risk limits does, field by field: which fields it touches, and for each
//! whether it loosens the limit in effect or tightens it.
//!
//! The engine applies a tightening at once and holds a loosening under the timelock (see
//! [`crate::engine`]'s risk-limit calls), so the one question this module answers is "which
//! way is looser?" for every field of [`RiskConfig`]. The answer is [`RULES`], the only
//! place it is written down: one [`Direction`] per field (`*` stands for any strategy or
//! level name). A field with no rule counts as loosening whichever way it moves, and a unit
//! test fails when `RiskConfig` grows a field that has no rule, so a new limit cannot slip
//! past the timelock unnoticed.
//!
//! Values are compared on the configuration's JSON form (the shape of a `--risk-config`
//! JSON file). An absent optional field (`max_notional`, a strategy override, a promotion
//! condition) is no constraint at all: the loosest value there is, whatever the direction.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use stratbox_proto::U256;
use stratbox_risk::RiskConfig;

/// Which way a field loosens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A cap: a higher value (or none) is looser. `max_*` limits.
    Cap,
    /// A floor or a requirement: a lower value (or none) is looser. `min_*` limits.
    Floor,
    /// A permission: turning it on loosens (`allow_risk_reducing`).
    OnLoosens,
    /// A safeguard: turning it off loosens (`halt_on_failure`).
    OffLoosens,
    /// One of an ordered list of names, least permissive first: moving up the list loosens.
    Ordered(&'static [&'static str]),
    /// No natural order (e.g. the Sharpe ratio's annualisation): every change loosens.
    AnyChange,
}

/// Permission levels, least permissive first.
const LEVELS: &[&str] = &["L0", "L1", "L2", "L3", "L4", "L5"];
/// Mode ceilings, least permissive first.
const MODES: &[&str] = &["halted", "shadow", "staged", "live"];

/// Every field of [`RiskConfig`] and which way it loosens; see the module docs.
pub const RULES: &[(&str, Direction)] = &[
    // Sync Sentinel: more lag or lead accepted is looser.
    ("sentinel.max_lag_blocks", Direction::Cap),
    ("sentinel.max_lead_blocks", Direction::Cap),
    // Oracles: fewer sources, wider disagreement, older quotes, no halt: looser.
    ("oracle.min_sources", Direction::Floor),
    ("oracle.max_deviation_bps", Direction::Cap),
    ("oracle.max_age_blocks", Direction::Cap),
    ("oracle.halt_on_failure", Direction::OffLoosens),
    // Hard limits.
    ("limits.max_slippage_bps", Direction::Cap),
    ("limits.max_drawdown_bps", Direction::Cap),
    ("limits.max_daily_loss_bps", Direction::Cap),
    ("limits.max_leverage_bps", Direction::Cap),
    ("limits.min_cash_reserve_bps", Direction::Floor),
    ("limits.max_asset_exposure_bps", Direction::Cap),
    ("limits.allow_risk_reducing", Direction::OnLoosens),
    // A strategy override only tightens; removing one (none) is the loosest.
    ("limits.strategies.*.max_slippage_bps", Direction::Cap),
    ("limits.strategies.*.max_drawdown_bps", Direction::Cap),
    ("limits.strategies.*.max_daily_loss_bps", Direction::Cap),
    ("limits.strategies.*.max_leverage_bps", Direction::Cap),
    ("limits.strategies.*.min_cash_reserve_bps", Direction::Floor),
    ("limits.strategies.*.max_asset_exposure_bps", Direction::Cap),
    // Permission levels: starting or restoring higher is looser.
    ("permission.initial_level", Direction::Ordered(LEVELS)),
    ("permission.max_restore_level", Direction::Ordered(LEVELS)),
    ("permission.sharpe_periods_per_year", Direction::AnyChange),
    ("permission.levels.*.mode", Direction::Ordered(MODES)),
    (
        "permission.levels.*.max_trade_bps_of_equity",
        Direction::Cap,
    ),
    ("permission.levels.*.max_notional", Direction::Cap),
    // Promotion needs at least this much: asking less is looser.
    ("permission.promotion.*.min_days", Direction::Floor),
    ("permission.promotion.*.min_trades", Direction::Floor),
    ("permission.promotion.*.min_win_rate_bps", Direction::Floor),
    ("permission.promotion.*.min_sharpe", Direction::Floor),
    (
        "permission.promotion.*.min_winning_day_streak",
        Direction::Floor,
    ),
    // Demotion below a win rate: a lower bar demotes less (looser); waiting for more
    // trades or a longer losing streak before demoting is looser.
    ("permission.demotion.*.below_win_rate_bps", Direction::Floor),
    ("permission.demotion.*.min_trades", Direction::Cap),
    ("permission.demotion.*.losing_trade_streak", Direction::Cap),
    // Gas: paying more is looser.
    ("gas.max_gas_price_gwei", Direction::Cap),
];

/// The rule for a field, by its path; `None` for a field [`RULES`] does not name.
pub fn direction(path: &[String]) -> Option<Direction> {
    RULES.iter().find_map(|(pattern, d)| {
        let parts: Vec<&str> = pattern.split('.').collect();
        (parts.len() == path.len()
            && parts
                .iter()
                .zip(path)
                .all(|(p, s)| *p == "*" || *p == s.as_str()))
        .then_some(*d)
    })
}

/// Whether moving a field from `old` to `new` (different values) loosens it. `Null` is an
/// absent optional field: no constraint, the loosest value. Values that cannot be compared
/// (a malformed amount) count as loosening.
pub fn loosens(dir: Direction, old: &Value, new: &Value) -> bool {
    match dir {
        Direction::Cap | Direction::Floor => match (old, new) {
            (_, Value::Null) => true,
            (Value::Null, _) => false,
            (a, b) => match compare(b, a) {
                Some(Ordering::Greater) => dir == Direction::Cap,
                Some(Ordering::Less) => dir == Direction::Floor,
                Some(Ordering::Equal) => false,
                None => true,
            },
        },
        Direction::OnLoosens => new == &Value::Bool(true),
        Direction::OffLoosens => new == &Value::Bool(false),
        Direction::Ordered(names) => {
            let rank = |v: &Value| v.as_str().and_then(|s| names.iter().position(|n| *n == s));
            match (rank(old), rank(new)) {
                (Some(a), Some(b)) => b > a,
                _ => true,
            }
        }
        Direction::AnyChange => true,
    }
}

/// Orders two numbers: integers exactly, amounts (base-10 strings) as 256-bit integers,
/// anything else numeric as floats (the Sharpe ratio).
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        let x: U256 = stratbox_proto::parse_amount(x).ok()?;
        let y: U256 = stratbox_proto::parse_amount(y).ok()?;
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// One field a change moves.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldChange {
    /// Where the field is, one name per level (`["limits", "max_slippage_bps"]`).
    pub path: Vec<String>,
    /// The value in effect when the change was proposed (`null`: absent).
    pub old: Value,
    /// The value proposed (`null`: absent).
    pub new: Value,
    /// Whether it loosens (held under the timelock) rather than tightens (applied at once).
    pub loosens: bool,
}

impl FieldChange {
    /// The dotted path, as the configuration file names the field.
    pub fn field(&self) -> String {
        self.path.join(".")
    }
}

/// A value as an operator reads it: numbers and names bare, an absent field `none`.
pub fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}",
            self.field(),
            show_value(&self.old),
            show_value(&self.new)
        )
    }
}

/// `a -> b, c -> d`, for logs and audit rows.
pub fn describe(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a change of limits cannot be worked out or applied.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The configuration does not convert to or from its JSON form (a bug, or a stored
    /// change that no longer fits the configuration's fields).
    #[error("risk configuration as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A field path that goes through something that is not a table.
    #[error("{0}: not a field of the risk configuration")]
    BadPath(String),
}

/// Every leaf field of `cfg` by path; absent optional fields are left out.
fn leaves(cfg: &RiskConfig) -> Result<BTreeMap<Vec<String>, Value>, ChangeError> {
    fn walk(prefix: &mut Vec<String>, v: Value, out: &mut BTreeMap<Vec<String>, Value>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    prefix.push(k);
                    walk(prefix, v, out);
                    prefix.pop();
                }
            }
            Value::Null => {}
            leaf => {
                out.insert(prefix.clone(), leaf);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&mut Vec::new(), serde_json::to_value(cfg)?, &mut out);
    Ok(out)
}

/// Every field of `cfg` that has a value, dotted, in path order (for `stratbox risk show`).
pub fn fields(cfg: &RiskConfig) -> Result<Vec<(String, Value)>, ChangeError> {
    Ok(leaves(cfg)?
        .into_iter()
        .map(|(p, v)| (p.join("."), v))
        .collect())
}

/// The fields that differ between the limits in effect and the proposed ones, in path
/// order, each marked loosening or tightening.
pub fn diff(current: &RiskConfig, proposed: &RiskConfig) -> Result<Vec<FieldChange>, ChangeError> {
    let old = leaves(current)?;
    let new = leaves(proposed)?;
    let mut paths: Vec<&Vec<String>> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    Ok(paths
        .into_iter()
        .filter_map(|p| {
            let o = old.get(p).cloned().unwrap_or(Value::Null);
            let n = new.get(p).cloned().unwrap_or(Value::Null);
            if o == n {
                return None;
            }
            let loosens = direction(p).is_none_or(|d| loosens(d, &o, &n));
            Some(FieldChange {
                path: p.clone(),
                old: o,
                new: n,
                loosens,
            })
        })
        .collect())
}

/// `base` with each change's new value put in place (an absent new value removes the
/// field, leaving it at its default, which for every optional field is none). Not
/// validated: the caller validates the result.
pub fn apply(base: &RiskConfig, changes: &[FieldChange]) -> Result<RiskConfig, ChangeError> {
    let mut doc = serde_json::to_value(base)?;
    for c in changes {
        let Some((last, parents)) = c.path.split_last() else {
            return Err(ChangeError::BadPath(String::new()));
        };
        let mut at = &mut doc;
        for p in parents {
            let Value::Object(m) = at else {
                return Err(ChangeError::BadPath(c.field()));
            };
            at = m
                .entry(p.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        let Value::Object(m) = at else {
            return Err(ChangeError::BadPath(c.field()));
        };
        if c.new.is_null() {
            m.remove(last);
        } else {
            m.insert(last.clone(), c.new.clone());
        }
    }
    Ok(serde_json::from_value(doc)?)
}

/// `ms` since the epoch as a UTC time (`2026-12-08T02:00:00Z`), for audit rows and the
/// command line: when a change takes effect is read by people.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stratbox_risk::{LimitsOverride, PermissionLevel};

    fn path(s: &str) -> Vec<String> {
        s.split('.').map(str::to_owned).collect()
    }

    fn one(old: &RiskConfig, new: &RiskConfig) -> FieldChange {
        let d = diff(old, new).expect("diff");
        assert_eq!(d.len(), 1, "{d:?}");
        d.into_iter().next().expect("one change")
    }

    /// A configuration with every optional field present, so every field is a leaf.
    fn everything() -> RiskConfig {
        let mut c = RiskConfig::default();
        c.limits.strategies.insert(
            "s".into(),
            LimitsOverride {
                max_slippage_bps: Some(1),
                max_drawdown_bps: Some(1),
                max_daily_loss_bps: Some(1),
                max_leverage_bps: Some(1),
                min_cash_reserve_bps: Some(1),
                max_asset_exposure_bps: Some(1),
            },
        );
        for l in [
            &mut c.permission.levels.l0,
            &mut c.permission.levels.l1,
            &mut c.permission.levels.l2,
            &mut c.permission.levels.l3,
            &mut c.permission.levels.l4,
            &mut c.permission.levels.l5,
        ] {
            l.max_notional = Some(U256::from(1u64));
        }
        for r in [
            &mut c.permission.promotion.l1_to_l2,
            &mut c.permission.promotion.l2_to_l3,
            &mut c.permission.promotion.l3_to_l4,
            &mut c.permission.promotion.l4_to_l5,
        ] {
            r.min_win_rate_bps = Some(1);
            r.min_sharpe = Some(1.0);
        }
        for r in [
            &mut c.permission.demotion.l2,
            &mut c.permission.demotion.l3,
            &mut c.permission.demotion.l4,
            &mut c.permission.demotion.l5,
        ] {
            r.below_win_rate_bps = Some(1);
            r.losing_trade_streak = Some(1);
        }
        c
    }

    /// Adding a field to `RiskConfig` without deciding which way it loosens fails here.
    #[test]
    fn every_field_has_a_rule() {
        let missing: Vec<String> = leaves(&everything())
            .expect("leaves")
            .keys()
            .filter(|p| direction(p).is_none())
            .map(|p| p.join("."))
            .collect();
        assert!(
            missing.is_empty(),
            "fields with no rule in RULES: {missing:?}"
        );
    }

    /// Every rule names a real field (no typo leaves a field without its rule).
    #[test]
    fn every_rule_names_a_field() {
        let fields = leaves(&everything()).expect("leaves");
        for (pattern, _) in RULES {
            let p: Vec<String> = pattern.split('.').map(str::to_owned).collect();
            assert!(
                fields.keys().any(|f| f.len() == p.len()
                    && p.iter().zip(f).all(|(a, b)| a == "*" || a == b)),
                "{pattern} matches no field"
            );
        }
    }

    #[test]
    fn cap_higher_or_none_loosens() {
        let base = RiskConfig::default();
        let mut up = base.clone();
        up.limits.max_slippage_bps += 1;
        let c = one(&base, &up);
        assert_eq!(c.field(), "limits.max_slippage_bps");
        assert!(c.loosens);
        assert!(!one(&up, &base).loosens);
        // An amount cap, compared as 256-bit integers; none is no cap at all.
        let mut capped = base.clone();
        capped.permission.levels.l3.max_notional = Some(U256::from(10u64).pow(U256::from(30u64)));
        let mut more = capped.clone();
        more.permission.levels.l3.max_notional = Some(U256::from(10u64).pow(U256::from(31u64)));
        assert!(!one(&base, &capped).loosens, "none -> a cap tightens");
        assert!(one(&capped, &base).loosens, "a cap -> none loosens");
        assert!(one(&capped, &more).loosens);
        assert!(!one(&more, &capped).loosens);
    }

    #[test]
    fn floor_lower_or_none_loosens() {
        let base = RiskConfig::default();
        let mut down = base.clone();
        down.limits.min_cash_reserve_bps -= 1;
        assert!(one(&base, &down).loosens);
        assert!(!one(&down, &base).loosens);
        let mut fewer = base.clone();
        fewer.oracle.min_sources -= 1;
        assert!(one(&base, &fewer).loosens);
        // A float requirement (Sharpe), and removing it.
        let mut sharpe = base.clone();
        sharpe.permission.promotion.l2_to_l3.min_sharpe = Some(0.5);
        assert!(one(&base, &sharpe).loosens, "1.0 -> 0.5");
        assert!(!one(&sharpe, &base).loosens, "0.5 -> 1.0");
        let mut none = base.clone();
        none.permission.promotion.l2_to_l3.min_sharpe = None;
        assert!(one(&base, &none).loosens, "a requirement removed");
    }

    #[test]
    fn switches() {
        let base = RiskConfig::default();
        let mut no_halt = base.clone();
        no_halt.oracle.halt_on_failure = false;
        assert!(one(&base, &no_halt).loosens);
        assert!(!one(&no_halt, &base).loosens);
        let mut no_reducing = base.clone();
        no_reducing.limits.allow_risk_reducing = false;
        assert!(!one(&base, &no_reducing).loosens);
        assert!(one(&no_reducing, &base).loosens);
    }

    #[test]
    fn ordered_names() {
        let base = RiskConfig::default();
        let mut higher = base.clone();
        higher.permission.initial_level = PermissionLevel::L2;
        assert!(one(&base, &higher).loosens);
        assert!(!one(&higher, &base).loosens);
        let mut staged = base.clone();
        staged.permission.levels.l1.mode = stratbox_risk::ModeCeiling::Staged;
        assert!(one(&base, &staged).loosens, "shadow -> staged");
        assert!(!one(&staged, &base).loosens);
    }

    #[test]
    fn unordered_fields_loosen_either_way() {
        let base = RiskConfig::default();
        let mut p = base.clone();
        p.permission.sharpe_periods_per_year = 252;
        assert!(one(&base, &p).loosens);
        assert!(one(&p, &base).loosens);
        // And a field no rule names.
        assert!(direction(&path("limits.no_such_field")).is_none());
    }

    #[test]
    fn strategy_overrides() {
        let base = RiskConfig::default();
        let mut with = base.clone();
        with.limits.strategies.insert(
            "momentum".into(),
            LimitsOverride {
                max_slippage_bps: Some(50),
                min_cash_reserve_bps: Some(2_000),
                ..LimitsOverride::default()
            },
        );
        let added = diff(&base, &with).expect("diff");
        assert_eq!(added.len(), 2, "{added:?}");
        assert!(added.iter().all(|c| !c.loosens), "an override tightens");
        let removed = diff(&with, &base).expect("diff");
        assert!(removed.iter().all(|c| c.loosens), "removing one loosens");
        // Applying the removal gives back a configuration with no constraint left.
        let back = apply(&with, &removed).expect("apply");
        assert_eq!(
            back.limits.for_strategy("momentum"),
            base.limits.for_strategy("momentum")
        );
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_608_800_123), "2026-12-07T02:00:00Z");
    }

    #[test]
    fn split_and_apply() {
        let base = RiskConfig::default();
        let mut next = base.clone();
        next.limits.max_slippage_bps = 50; // tighter
        next.limits.max_drawdown_bps = 2_000; // looser
        next.gas.max_gas_price_gwei = 100; // tighter
        let d = diff(&base, &next).expect("diff");
        let (loose, tight): (Vec<_>, Vec<_>) = d.into_iter().partition(|c| c.loosens);
        assert_eq!(
            tight.iter().map(FieldChange::field).collect::<Vec<_>>(),
            ["gas.max_gas_price_gwei", "limits.max_slippage_bps"]
        );
        assert_eq!(loose[0].field(), "limits.max_drawdown_bps");
        assert_eq!(loose[0].old, json!(1_000));
        let now = apply(&base, &tight).expect("apply");
        assert_eq!(now.limits.max_slippage_bps, 50);
        assert_eq!(now.limits.max_drawdown_bps, 1_000);
        assert_eq!(apply(&now, &loose).expect("apply"), next);
        assert_eq!(
            describe(&tight),
            "gas.max_gas_price_gwei 500 -> 100, limits.max_slippage_bps 100 -> 50"
        );
    }
}
