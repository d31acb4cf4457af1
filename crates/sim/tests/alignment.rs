//! Gate G2: `stratbox_sdk::math` and the real Uniswap V3 pool bytecode agree exactly.
//!
//! Hundreds of pools (all three fee tiers, prices across the tick range, liquidity from 1 to
//! ~2^110) each get many exact-input swaps simulated on throw-away overlays, with random
//! committed swaps in between to move the state (crossing ticks on the way). Every simulated
//! swap has a price limit strictly inside the step the pool will take first — before the next
//! initialised tick and before the end of the bitmap word — so the pool runs exactly one
//! `computeSwapStep`, which we compute with the SDK and compare: amount in, amount out, sqrt
//! price after, tick after (and liquidity, which must not change).
//!
//! The same cases then check the Python and JavaScript SDKs (`guest-sdk/python`,
//! `guest-sdk/js`): every step, the tick of its price, and the amounts a position on a range
//! around the pool's tick costs and returns, as the Rust SDK computed them (and, for the
//! step, as the pool's bytecode confirmed), fed to each SDK's `align` script. A strategy
//! author in any of the three languages computes what the pool will do.
//!
//! `STRATBOX_ALIGN_SEED` and `STRATBOX_ALIGN_CASES` override the fixed seed and case count.
//! A failure prints the seed and case number with every input, so it can be replayed.

use alloy_primitives::{Address, U256, address};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stratbox_evm::abi::IUniswapV3Pool;
use stratbox_sdk::math::liquidity_amounts::{amounts_for_mint, get_amounts_for_liquidity};
use stratbox_sdk::math::{compute_swap_step, get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio};
use stratbox_sim::{Action, Chain, EmbeddedConfig, PoolInfo, PoolSpec, SimError};

const DEFAULT_SEED: u64 = 0x005b_0c0d_ea11;
const DEFAULT_CASES: usize = 12_000;
const CASES_PER_POOL: usize = 40;
/// A committed swap moves the pool every this many cases.
const MOVE_EVERY: usize = 8;
const MIN_TICK: i32 = -887_272;
const MAX_TICK: i32 = 887_272;
const TRADER: Address = address!("0x00000000000000000000000000000000a119e000");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} does not parse")),
        Err(_) => default,
    }
}

/// A uniformly random value of a uniformly random bit length in `1..=max_bits`, so tiny and huge
/// values are equally likely.
fn log_uniform(rng: &mut StdRng, max_bits: u32) -> U256 {
    let bits = rng.random_range(1..=max_bits);
    let limbs = [
        rng.random::<u64>(),
        rng.random::<u64>(),
        rng.random::<u64>(),
        rng.random::<u64>(),
    ];
    let v = U256::from_limbs(limbs) >> (256 - bits as usize);
    v | (U256::from(1u8) << (bits as usize - 1))
}

/// Uniform in `[0, bound)`.
fn below(rng: &mut StdRng, bound: U256) -> U256 {
    if bound.is_zero() {
        return U256::ZERO;
    }
    let limbs = [
        rng.random::<u64>(),
        rng.random::<u64>(),
        rng.random::<u64>(),
        rng.random::<u64>(),
    ];
    U256::from_limbs(limbs) % bound
}

fn floor_to_spacing(tick: i32, spacing: i32) -> i32 {
    tick.div_euclid(spacing) * spacing
}

/// `TickBitmap.nextInitializedTickWithinOneWord`, on the pool's real bitmap, clamped like the
/// pool's swap loop does: the first tick boundary the swap would stop at.
fn next_tick(
    chain: &Chain,
    pool: Address,
    tick: i32,
    spacing: i32,
    lte: bool,
) -> Result<i32, SimError> {
    let mut compressed = tick / spacing;
    if tick < 0 && tick % spacing != 0 {
        compressed -= 1;
    }
    let next = if lte {
        let (word, bit) = (compressed >> 8, (compressed & 255) as usize);
        let bitmap = chain.call(
            pool,
            IUniswapV3Pool::tickBitmapCall {
                wordPosition: word as i16,
            },
        )?;
        let mask = (U256::from(1u8) << bit) - U256::from(1u8) + (U256::from(1u8) << bit);
        let masked = bitmap & mask;
        if masked.is_zero() {
            (compressed - bit as i32) * spacing
        } else {
            let msb = 255 - masked.leading_zeros() as i32;
            (compressed - (bit as i32 - msb)) * spacing
        }
    } else {
        let c = compressed + 1;
        let (word, bit) = (c >> 8, (c & 255) as usize);
        let bitmap = chain.call(
            pool,
            IUniswapV3Pool::tickBitmapCall {
                wordPosition: word as i16,
            },
        )?;
        let mask = !((U256::from(1u8) << bit) - U256::from(1u8));
        let masked = bitmap & mask;
        if masked.is_zero() {
            (c + (255 - bit as i32)) * spacing
        } else {
            let lsb = masked.trailing_zeros() as i32;
            (c + (lsb - bit as i32)) * spacing
        }
    };
    Ok(next.clamp(MIN_TICK, MAX_TICK))
}

/// A pool at a random price with random liquidity: a full-range position and a narrower one
/// around the price, so some swaps meet initialised ticks and some word boundaries.
fn random_pool(chain: &mut Chain, rng: &mut StdRng) -> Result<PoolInfo, SimError> {
    let fee = [500u32, 3000, 10_000][rng.random_range(0..3)];
    let spacing = match fee {
        500 => 10,
        3000 => 60,
        _ => 200,
    };
    // Mostly the whole range, sometimes near price 1 where real pools live.
    let tick = if rng.random_bool(0.7) {
        rng.random_range(MIN_TICK + 1_000..MAX_TICK - 1_000)
    } else {
        rng.random_range(-50_000..50_000)
    };
    let low = get_sqrt_ratio_at_tick(tick).map_err(|e| SimError::Invalid(e.to_string()))?;
    let high = get_sqrt_ratio_at_tick(tick + 1).map_err(|e| SimError::Invalid(e.to_string()))?;
    let sqrt_price_x96 = low + below(rng, high - low);
    let max_bits = if rng.random_bool(0.2) { 24 } else { 109 };
    let full = log_uniform(rng, max_bits).to::<u128>();
    let info = chain.create_pool(
        &PoolSpec {
            fee,
            sqrt_price_x96,
            seed_liquidity: full,
            seed_range: None,
        },
        None,
    )?;
    let width = rng.random_range(1..=400) * spacing;
    let lower = (floor_to_spacing(tick, spacing) - width)
        .max(floor_to_spacing(MIN_TICK, spacing) + spacing);
    let upper = (floor_to_spacing(tick, spacing) + width).min(floor_to_spacing(MAX_TICK, spacing));
    let narrow = Action::AddLiquidity {
        pool: info.address,
        tick_lower: lower,
        tick_upper: upper,
        liquidity: log_uniform(rng, max_bits).to::<u128>(),
    };
    let added = chain.execute(stratbox_sim::DEFAULT_MARKET_MAKER, &narrow)?;
    if !added.outcome.success {
        return Err(SimError::Invalid(format!(
            "narrow seed {narrow:?} reverted: {:?}",
            added.outcome.revert_reason
        )));
    }
    let big = U256::from(1u8) << 200usize;
    chain.fund(TRADER, info.token0, big)?;
    chain.fund(TRADER, info.token1, big)?;
    Ok(info)
}

/// A committed swap to a random price up to ~3000 ticks away; may cross initialised ticks.
fn move_pool(chain: &mut Chain, rng: &mut StdRng, info: &PoolInfo) -> Result<(), SimError> {
    let state = chain.pool_state(info.address)?;
    let zero_for_one = rng.random_bool(0.5);
    let target_tick = if zero_for_one {
        (state.tick - rng.random_range(1..3_000)).max(MIN_TICK + 1)
    } else {
        (state.tick + rng.random_range(1..3_000)).min(MAX_TICK - 1)
    };
    let limit =
        get_sqrt_ratio_at_tick(target_tick).map_err(|e| SimError::Invalid(e.to_string()))?;
    let valid = if zero_for_one {
        limit < state.sqrt_price_x96
    } else {
        limit > state.sqrt_price_x96
    };
    if !valid {
        return Ok(());
    }
    let swap = Action::Swap {
        pool: info.address,
        zero_for_one,
        amount_in: log_uniform(rng, 190),
        sqrt_price_limit_x96: Some(limit),
    };
    let done = chain.execute(TRADER, &swap)?;
    if !done.outcome.success {
        return Err(SimError::Invalid(format!(
            "moving swap {swap:?} reverted: {:?}",
            done.outcome.revert_reason
        )));
    }
    Ok(())
}

struct Case {
    swap: Action,
    fee: u32,
    sqrt_price: U256,
    tick: i32,
    liquidity: u128,
}

/// One swap whose price limit lies strictly inside the pool's first step, or `None` when the
/// step is too narrow to hold one.
fn random_case(chain: &Chain, rng: &mut StdRng, info: &PoolInfo) -> Result<Option<Case>, SimError> {
    let state = chain.pool_state(info.address)?;
    let zero_for_one = rng.random_bool(0.5);
    let next = next_tick(
        chain,
        info.address,
        state.tick,
        info.tick_spacing,
        zero_for_one,
    )?;
    let boundary = get_sqrt_ratio_at_tick(next).map_err(|e| SimError::Invalid(e.to_string()))?;
    // Open interval between the price and the boundary, exclusive at both ends.
    let (lo, hi) = if zero_for_one {
        (boundary, state.sqrt_price_x96)
    } else {
        (state.sqrt_price_x96, boundary)
    };
    if hi <= lo + U256::from(2u8) {
        return Ok(None);
    }
    let gap = hi - lo - U256::from(1u8);
    // Either anywhere in the step or very close to the price (tiny moves, rounding edges).
    let offset = if rng.random_bool(0.3) {
        below(rng, gap.min(U256::from(1u64 << 40)))
    } else {
        below(rng, gap)
    };
    let limit = if zero_for_one {
        hi - U256::from(1u8) - offset
    } else {
        lo + U256::from(1u8) + offset
    };
    let amount_in = match rng.random_range(0..10) {
        0 => U256::from(rng.random_range(1u64..1_000)),
        _ => log_uniform(rng, 190),
    };
    Ok(Some(Case {
        swap: Action::Swap {
            pool: info.address,
            zero_for_one,
            amount_in,
            sqrt_price_limit_x96: Some(limit),
        },
        fee: info.fee,
        sqrt_price: state.sqrt_price_x96,
        tick: state.tick,
        liquidity: state.liquidity,
    }))
}

/// Compares one case; `Err(description)` on any difference.
fn check(chain: &Chain, case: &Case) -> Result<(), String> {
    let Action::Swap {
        zero_for_one,
        amount_in,
        sqrt_price_limit_x96: Some(limit),
        ..
    } = case.swap
    else {
        return Err("not a limited swap".into());
    };
    let step = compute_swap_step(
        case.sqrt_price,
        limit,
        case.liquidity,
        amount_in,
        true,
        case.fee,
    )
    .map_err(|e| format!("sdk compute_swap_step failed: {e}"))?;
    let paid = step.amount_in + step.fee_amount;
    let (want0, want1) = if zero_for_one {
        (paid, step.amount_out)
    } else {
        (step.amount_out, paid)
    };
    let want_tick = if step.sqrt_ratio_next_x96 == case.sqrt_price {
        case.tick
    } else {
        get_tick_at_sqrt_ratio(step.sqrt_ratio_next_x96)
            .map_err(|e| format!("sdk get_tick_at_sqrt_ratio: {e}"))?
    };
    let got = chain
        .simulate(TRADER, &[case.swap])
        .map_err(|e| format!("simulate failed: {e}"))?
        .remove(0);
    if !got.success {
        return Err(format!("pool reverted: {:?}", got.revert_reason));
    }
    let mut diffs = Vec::new();
    if got.amount0 != want0 {
        diffs.push(format!("amount0 pool {} sdk {}", got.amount0, want0));
    }
    if got.amount1 != want1 {
        diffs.push(format!("amount1 pool {} sdk {}", got.amount1, want1));
    }
    if got.sqrt_price_after != step.sqrt_ratio_next_x96 {
        diffs.push(format!(
            "sqrt price after pool {} sdk {}",
            got.sqrt_price_after, step.sqrt_ratio_next_x96
        ));
    }
    if got.tick_after != want_tick {
        diffs.push(format!(
            "tick after pool {} sdk {}",
            got.tick_after, want_tick
        ));
    }
    if got.liquidity_after != case.liquidity {
        diffs.push(format!(
            "liquidity changed {} -> {} (not a single step)",
            case.liquidity, got.liquidity_after
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

#[test]
fn sdk_math_matches_pool_bytecode_exactly() -> Result<(), SimError> {
    let seed: u64 = env_or("STRATBOX_ALIGN_SEED", DEFAULT_SEED);
    let cases: usize = env_or("STRATBOX_ALIGN_CASES", DEFAULT_CASES);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut chain = Chain::embedded(&EmbeddedConfig {
        pools: Vec::new(),
        ..EmbeddedConfig::default()
    })?;

    let mut checked = 0usize;
    let mut skipped = 0usize;
    let mut failures = Vec::new();
    let mut per_fee = [0usize; 3];
    let (mut reached_limit, mut ran_out) = (0usize, 0usize);
    let mut case_no = 0usize;
    let mut foreign = Vec::new();
    while checked < cases && failures.len() < 20 {
        let info = random_pool(&mut chain, &mut rng)?;
        for i in 0..CASES_PER_POOL {
            if checked >= cases {
                break;
            }
            if i % MOVE_EVERY == MOVE_EVERY - 1 {
                move_pool(&mut chain, &mut rng, &info)?;
            }
            case_no += 1;
            let Some(case) = random_case(&chain, &mut rng, &info)? else {
                skipped += 1;
                continue;
            };
            match check(&chain, &case) {
                Ok(()) => foreign.extend(foreign_cases(&case, info.tick_spacing)),
                Err(diff) => failures.push(format!(
                    "seed {seed:#x} case {case_no}: fee {} sqrtP {} tick {} L {} swap {:?}: {diff}",
                    case.fee, case.sqrt_price, case.tick, case.liquidity, case.swap
                )),
            }
            if let Action::Swap {
                sqrt_price_limit_x96: Some(limit),
                ..
            } = case.swap
                && chain.simulate(TRADER, &[case.swap])?[0].sqrt_price_after == limit
            {
                reached_limit += 1;
            } else {
                ran_out += 1;
            }
            per_fee[match case.fee {
                500 => 0,
                3000 => 1,
                _ => 2,
            }] += 1;
            checked += 1;
        }
    }
    eprintln!(
        "alignment: seed {seed:#x}, {checked} cases on {} pools ({skipped} skipped: no room in the step); \
         fee tiers 500/3000/10000: {per_fee:?}; limit reached {reached_limit}, input exhausted {ran_out}",
        chain.pools().len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements (first {}):\n{}",
        failures.len(),
        failures.len().min(20),
        failures.join("\n")
    );
    assert!(checked >= cases, "only {checked} cases checked");
    // Both outcomes of a step must be exercised, or the test proves less than it claims.
    assert!(
        reached_limit > cases / 20 && ran_out > cases / 20,
        "{reached_limit} / {ran_out}"
    );
    assert!(per_fee.iter().all(|&n| n > cases / 10), "{per_fee:?}");

    let input = serde_json::Value::Array(foreign).to_string();
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
    for (program, script) in [
        ("python3", "python/tests/align.py"),
        ("node", "js/tests/align.mjs"),
    ] {
        let report = run_align(program, &sdk.join(script), &input);
        assert!(
            report.is_ok(),
            "{program} {script}: {}",
            report.unwrap_err()
        );
    }
    Ok(())
}

fn text(v: impl ToString) -> serde_json::Value {
    serde_json::Value::String(v.to_string())
}

/// What the Rust SDK computed for one G2 case, as `align` cases: the step (which the pool
/// confirmed), the tick of the price it ends at, the tick's own price, and a position on a
/// range around the pool's tick.
fn foreign_cases(case: &Case, spacing: i32) -> Vec<serde_json::Value> {
    use serde_json::json;
    let Action::Swap {
        amount_in,
        sqrt_price_limit_x96: Some(limit),
        ..
    } = case.swap
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(step) = compute_swap_step(
        case.sqrt_price,
        limit,
        case.liquidity,
        amount_in,
        true,
        case.fee,
    ) {
        out.push(json!({
            "fn": "compute_swap_step",
            "args": [text(case.sqrt_price), text(limit), text(case.liquidity), text(amount_in), true, case.fee],
            "expect": [text(step.sqrt_ratio_next_x96), text(step.amount_in), text(step.amount_out), text(step.fee_amount)],
        }));
        if let Ok(tick) = get_tick_at_sqrt_ratio(step.sqrt_ratio_next_x96) {
            out.push(json!({
                "fn": "get_tick_at_sqrt_ratio",
                "args": [text(step.sqrt_ratio_next_x96)],
                "expect": tick,
            }));
        }
    }
    if let Ok(price) = get_sqrt_ratio_at_tick(case.tick) {
        out.push(
            json!({"fn": "get_sqrt_ratio_at_tick", "args": [case.tick], "expect": text(price)}),
        );
    }
    let lower =
        (floor_to_spacing(case.tick, spacing) - 10 * spacing).max(MIN_TICK / spacing * spacing);
    let upper =
        (floor_to_spacing(case.tick, spacing) + 10 * spacing).min(MAX_TICK / spacing * spacing);
    if let (Ok(a), Ok(b)) = (get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)) {
        let l = case.liquidity.max(1);
        for (name, result) in [
            (
                "amounts_for_mint",
                amounts_for_mint(case.sqrt_price, a, b, l),
            ),
            (
                "get_amounts_for_liquidity",
                get_amounts_for_liquidity(case.sqrt_price, a, b, l),
            ),
        ] {
            let expect = match result {
                Ok((a0, a1)) => json!([text(a0), text(a1)]),
                Err(_) => json!({"error": true}),
            };
            out.push(json!({
                "fn": name,
                "args": [text(case.sqrt_price), text(a), text(b), text(l)],
                "expect": expect,
            }));
        }
    }
    out
}

/// Runs an SDK's `align` script on `input`; `Err` with its report unless it checked every
/// case and found no mismatch. A missing interpreter is a failure, not a skip.
fn run_align(program: &str, script: &std::path::Path, input: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .arg(script)
        // No __pycache__ beside the SDK's sources: the strategy catalog's build script
        // watches them, and a new file there would rebuild every component.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let feed = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()));
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    writer
        .join()
        .map_err(|_| "writer panicked".to_owned())?
        .map_err(|e| format!("writing the cases: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        format!(
            "unreadable report ({e}): {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let want = serde_json::from_str::<serde_json::Value>(input)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
    let checked = report["checked"].as_u64().unwrap_or(0) as usize;
    let mismatches = report["mismatches"].as_array().map_or(0, Vec::len);
    if !output.status.success() || mismatches > 0 || checked != want || want == 0 {
        let shown: String = stdout.chars().take(4000).collect();
        return Err(format!(
            "exit {}, checked {checked} of {want}, {mismatches} mismatches: {shown}",
            output.status
        ));
    }
    eprintln!("{program}: {checked} cases agree with the Rust SDK");
    Ok(())
}
