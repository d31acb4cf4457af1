//! What the exact math costs per call, natively: the engine runs these per proposal and the
//! host's strategies per event, so a regression here multiplies.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use stratbox_sdk::math::{
    Q96, compute_swap_step, get_amounts_for_liquidity, get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio, mul_div,
};
use stratbox_sdk::{Amount, U256};

fn math(c: &mut Criterion) {
    let e18 = U256::from(10u64.pow(18));
    let p = get_sqrt_ratio_at_tick(-201_000).unwrap_or(Q96);
    let target = get_sqrt_ratio_at_tick(-202_000).unwrap_or(Q96);
    c.bench_function("mul_div 512-bit", |b| {
        b.iter(|| {
            mul_div(
                black_box(U256::MAX >> 1usize),
                black_box(e18),
                black_box(e18 + U256::from(7u8)),
            )
        })
    });
    c.bench_function("get_sqrt_ratio_at_tick", |b| {
        b.iter(|| get_sqrt_ratio_at_tick(black_box(-201_123)))
    });
    c.bench_function("get_tick_at_sqrt_ratio", |b| {
        b.iter(|| get_tick_at_sqrt_ratio(black_box(p)))
    });
    c.bench_function("compute_swap_step exact-in", |b| {
        b.iter(|| {
            compute_swap_step(
                black_box(p),
                black_box(target),
                black_box(10u128.pow(22)),
                black_box(e18),
                true,
                3000,
            )
        })
    });
    let lo = get_sqrt_ratio_at_tick(-201_600).unwrap_or(Q96);
    let hi = get_sqrt_ratio_at_tick(-200_400).unwrap_or(Q96);
    c.bench_function("get_amounts_for_liquidity", |b| {
        b.iter(|| {
            get_amounts_for_liquidity(
                black_box(p),
                black_box(lo),
                black_box(hi),
                black_box(10u128.pow(18)),
            )
        })
    });
    let wire = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    c.bench_function("Amount parse 78 digits", |b| {
        b.iter(|| black_box(wire).parse::<Amount>())
    });
}

criterion_group!(benches, math);
criterion_main!(benches);
