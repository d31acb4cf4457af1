"""The Python clamm-maker against the Rust one's tests (strategies/clamm-maker)."""

import json
import unittest

import _paths  # noqa: F401
from clamm_maker import ClammMaker, Range, centred_range, outside
from stratbox import ConfigError, StrategyError
from stratbox.proposal import AddLiquidity, RemoveLiquidity
from stratbox.types import EventOrigin, Mint, NewBlock, PoolState, Snapshot, SwapEvent
from stratbox.v3 import MAX_TICK, MIN_TICK, amounts_for_mint, get_amounts_for_liquidity, get_sqrt_ratio_at_tick

POOL = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"
CONFIG = (
    f'{{"pool":"{POOL}","half_width_ticks":600,"margin_ticks":120,'
    '"liquidity":"1000000000000000000","max_slippage_bps":50}'
)


def snapshot(tick, pools=True):
    state = PoolState(
        pool=POOL.upper().replace("0X", "0x"),
        token0="0x0000000000000000000000000000000000000010",
        token1="0x0000000000000000000000000000000000000020",
        fee=3000,
        tick_spacing=60,
        sqrt_price_x96=str(get_sqrt_ratio_at_tick(tick)),
        tick=tick,
        liquidity="5000000000000000000",
    )
    return Snapshot(10, 1_700_000_000, (state,) if pools else (), ())


def swap(tick, pool=POOL):
    return SwapEvent(
        origin=EventOrigin(10, 0, ""),
        pool=pool,
        zero_for_one=True,
        amount_in="1",
        amount_out="1",
        sqrt_price_x96=str(get_sqrt_ratio_at_tick(tick)),
        liquidity="1",
        tick=tick,
    )


def ranges(proposals):
    out = []
    for p in proposals:
        kind = {AddLiquidity: "add", RemoveLiquidity: "remove"}[type(p.action)]
        out.append((kind, p.action.tick_lower, p.action.tick_upper))
    return out


class CentredRange(unittest.TestCase):
    def test_ranges_are_aligned_and_centred(self):
        self.assertEqual(centred_range(0, 60, 600), Range(-600, 600))
        self.assertEqual(centred_range(-1, 60, 600), Range(-660, 540))
        self.assertEqual(centred_range(125, 60, 100), Range(0, 240))
        self.assertEqual(centred_range(MIN_TICK, 60, 600).lower, -887220)
        self.assertEqual(centred_range(MAX_TICK - 1, 60, 600).upper, 887220)
        with self.assertRaises(StrategyError) as cm:
            centred_range(0, 0, 600)
        self.assertEqual(str(cm.exception), "pool tick spacing 0 is not positive")
        # Hostile snapshot values: no overflow, just a refusal or a clamped range.
        centred_range(-(1 << 31), 7, 600)
        centred_range((1 << 31) - 1, 1, (1 << 31) - 1)
        with self.assertRaises(StrategyError) as cm:
            centred_range(0, (1 << 31) - 1, 600)
        self.assertEqual(str(cm.exception), "no usable range around tick 0 with spacing 2147483647")

    def test_negative_ticks_floor_like_div_euclid(self):
        # div_euclid of -61 by 60 is -2: the centre is -120, not -60.
        self.assertEqual(centred_range(-61, 60, 60), Range(-180, -60))
        # The usable minimum truncates toward zero: -887272 / 7 * 7 = -887271.
        self.assertEqual(centred_range(MIN_TICK, 7, 600).lower, -887271)

    def test_outside_is_half_open(self):
        r = Range(-600, 600)
        self.assertFalse(outside(-720, r, 120))
        self.assertTrue(outside(-721, r, 120))
        self.assertFalse(outside(719, r, 120))
        self.assertTrue(outside(720, r, 120))
        self.assertTrue(outside(600, r, 0))


class Behaviour(unittest.TestCase):
    def maker(self):
        return ClammMaker.from_config(CONFIG)

    def test_no_position_adds_a_centred_range(self):
        m = self.maker()
        first = m.generate_proposals(swap(10), snapshot(10))
        self.assertEqual(ranges(first), [("add", -600, 600)])
        p = first[0]
        self.assertEqual(p.action.pool, POOL)
        self.assertEqual(p.action.liquidity, "1000000000000000000")
        self.assertEqual(p.max_slippage_bps, 50)
        self.assertEqual(p.reason, "centre liquidity on tick 10")

    def test_opens_then_holds_then_moves(self):
        m = self.maker()
        self.assertEqual(ranges(m.generate_proposals(swap(10), snapshot(10))), [("add", -600, 600)])
        # In range (and within the margin past the edge): nothing to do.
        self.assertEqual(m.generate_proposals(swap(650), snapshot(650)), [])
        self.assertEqual(m.generate_proposals(swap(-700), snapshot(-700)), [])
        # Past the margin: remove, then add.
        moved = m.generate_proposals(swap(800), snapshot(800))
        self.assertEqual(ranges(moved), [("remove", -600, 600), ("add", 180, 1380)])
        self.assertEqual(moved[0].reason, "tick 800 left [-600, 600) by more than 120")
        self.assertEqual(moved[1].reason, "centre liquidity on tick 800")
        self.assertEqual(m.position, Range(180, 1380))

    def test_expected_amounts_follow_the_pool_math(self):
        m = self.maker()
        p = m.generate_proposals(swap(0), snapshot(0))[0]
        a0, a1 = amounts_for_mint(
            get_sqrt_ratio_at_tick(0), get_sqrt_ratio_at_tick(-600), get_sqrt_ratio_at_tick(600), 10**18
        )
        self.assertEqual((p.expected_amount0, p.expected_amount1), (str(a0), str(a1)))
        # Centred at tick 0, both sides are non-zero and about 3% of L.
        self.assertTrue(29 * 10**15 < a0 < 31 * 10**15)
        # Price above the old range: the burn returns only token1, rounded down.
        moved = m.generate_proposals(swap(900), snapshot(900))
        r0, r1 = get_amounts_for_liquidity(
            get_sqrt_ratio_at_tick(900), get_sqrt_ratio_at_tick(-600), get_sqrt_ratio_at_tick(600), 10**18
        )
        self.assertEqual(r0, 0)
        self.assertEqual((moved[0].expected_amount0, moved[0].expected_amount1), ("0", str(r1)))
        self.assertNotEqual(moved[0].expected_amount1, "0")

    def test_golden_amounts(self):
        """Pinned wire values, checked against the closed forms the pool's rounding
        reduces to: ceil(ceil(N / b) / p) is ceil(N / (b * p)) for positive integers."""
        m = self.maker()
        p = m.generate_proposals(swap(0), snapshot(0))[0]
        self.assertEqual(p.expected_amount0, "29553010879137170")
        self.assertEqual(p.expected_amount1, "29553010879137170")
        price, a, b = (get_sqrt_ratio_at_tick(t) for t in (0, -600, 600))
        liquidity = 10**18
        self.assertEqual(int(p.expected_amount0), -(-(liquidity * 2**96 * (b - price)) // (b * price)))
        self.assertEqual(int(p.expected_amount1), -(-(liquidity * (price - a)) // 2**96))

    def test_ignores_other_pools_other_events_and_missing_state(self):
        m = self.maker()
        self.assertEqual(m.generate_proposals(swap(0, pool="0x0000000000000000000000000000000000000bad"), snapshot(0)), [])
        mint = Mint(EventOrigin(10, 0, ""), POOL, "0x1", -60, 60, "1", "1", "1")
        self.assertEqual(m.generate_proposals(mint, snapshot(0)), [])
        block = NewBlock(11, 0, "")
        self.assertEqual(m.generate_proposals(block, snapshot(0, pools=False)), [])
        self.assertEqual(ranges(m.generate_proposals(block, snapshot(0))), [("add", -600, 600)])

    def test_deterministic(self):
        def run():
            m = self.maker()
            out = []
            for t in (0, 300, 900, 900, -2000, 5, 5000):
                out.extend(m.generate_proposals(swap(t), snapshot(t)))
            return out

        a = run()
        self.assertEqual(a, run())
        self.assertEqual(len(a), 9)

    def test_a_failed_call_keeps_the_position(self):
        m = self.maker()
        bad = Snapshot(10, 0, (PoolState(POOL, "0x1", "0x2", 3000, 60, "1.5", 0, "1"),), ())
        with self.assertRaises(StrategyError) as cm:
            m.generate_proposals(swap(0), bad)
        self.assertEqual(
            str(cm.exception), "amount has a decimal point at byte 1; amounts are integers of raw units"
        )
        self.assertIsNone(m.position)


class Config(unittest.TestCase):
    def refused(self, config):
        with self.assertRaises(StrategyError) as cm:
            ClammMaker.from_config(config)
        return str(cm.exception)

    def test_refuses_bad_config_like_the_rust_one(self):
        base = {"pool": "0x1", "half_width_ticks": 10, "margin_ticks": 1, "liquidity": "1", "max_slippage_bps": 1}

        def with_(**kw):
            return json.dumps({**base, **kw})

        cases = [
            (with_(half_width_ticks=0), "half_width_ticks must be in 1..=887272, got 0"),
            (with_(half_width_ticks=887273), "half_width_ticks must be in 1..=887272, got 887273"),
            (with_(margin_ticks=-1), "margin_ticks must not be negative, got -1"),
            (with_(liquidity="0"), "liquidity must be positive"),
            (with_(liquidity=str(1 << 128)), "liquidity must fit in uint128"),
            (with_(max_slippage_bps=10001), "max_slippage_bps must be <= 10000, got 10001"),
            (
                with_(liquidity="1.5"),
                "bad clamm-maker config: amount has a decimal point at byte 1; amounts are integers of raw units",
            ),
            (
                with_(liquidity=1),
                "bad clamm-maker config: invalid type: integer `1`, expected a base-10 string of raw units",
            ),
            (with_(half_width_ticks=600.0), "bad clamm-maker config: invalid type: floating point `600.0`, expected i32"),
            (with_(half_width_ticks=True), "bad clamm-maker config: invalid type: boolean `true`, expected i32"),
            (with_(half_width_ticks=1 << 31), "bad clamm-maker config: invalid value: integer `2147483648`, expected i32"),
            (with_(max_slippage_bps=-1), "bad clamm-maker config: invalid value: integer `-1`, expected u32"),
            (with_(pool=1), "bad clamm-maker config: invalid type: integer `1`, expected a string"),
            (with_(extra=1), "bad clamm-maker config: unknown field `extra`, expected one of `pool`, "
             "`half_width_ticks`, `margin_ticks`, `liquidity`, `max_slippage_bps`"),
            ('{"pool":"0x1"}', "bad clamm-maker config: missing field `half_width_ticks`"),
            ('{"pool":"0x1","pool":"0x2"}', "bad clamm-maker config: duplicate field `pool`"),
            ("[]", "bad clamm-maker config: invalid length 0, expected struct Config with 5 elements"),
            ("5", "bad clamm-maker config: invalid type: integer `5`, expected struct Config"),
            ('{"half_width_ticks": NaN}', "bad clamm-maker config: NaN is not JSON"),
        ]
        for config, message in cases:
            with self.subTest(config=config):
                self.assertEqual(self.refused(config), message)
        self.assertTrue(self.refused("{").startswith("bad clamm-maker config: "))

    def test_config_errors_are_config_errors(self):
        with self.assertRaises(ConfigError):
            ClammMaker.from_config('{"pool": 1}')

    def test_serde_reads_a_struct_from_an_array_too(self):
        m = ClammMaker.from_config(f'["{POOL}", 600, 120, "1000000000000000000", 50]')
        self.assertEqual((m.pool, m.half_width_ticks, m.liquidity), (POOL, 600, 10**18))


if __name__ == "__main__":
    unittest.main()
