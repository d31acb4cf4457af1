import unittest

import _paths  # noqa: F401
from stratbox.proposal import (
    AddLiquidity,
    EmptyRange,
    Proposal,
    RemoveLiquidity,
    SlippageOutOfRange,
    SwapAction,
    ZeroAmount,
    add_liquidity,
    remove_liquidity,
    swap,
)

POOL = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"


class Builders(unittest.TestCase):
    def test_swap_builds_wire_strings(self):
        p = (
            swap(POOL, True, 1000)
            .expect(1000, 997)
            .max_slippage_bps(50)
            .sqrt_price_limit(4_295_128_740)
            .reason("trend")
            .build()
        )
        self.assertEqual(
            p,
            Proposal(
                action=SwapAction(POOL, True, "1000", "4295128740"),
                expected_amount0="1000",
                expected_amount1="997",
                max_slippage_bps=50,
                reason="trend",
            ),
        )

    def test_defaults(self):
        p = swap(POOL, False, "5").build()
        self.assertEqual((p.expected_amount0, p.expected_amount1, p.max_slippage_bps, p.reason), ("0", "0", 0, ""))
        self.assertIsNone(p.action.sqrt_price_limit_x96)

    def test_refuses_what_the_host_would(self):
        with self.assertRaises(SlippageOutOfRange) as cm:
            swap(POOL, True, 1).max_slippage_bps(10_001).build()
        self.assertEqual(str(cm.exception), "max slippage 10001 bps exceeds 10000")
        with self.assertRaises(ZeroAmount) as cm:
            swap(POOL, True, 0).build()
        self.assertEqual(str(cm.exception), "a swap proposal needs a non-zero amount")
        with self.assertRaises(EmptyRange) as cm:
            add_liquidity(POOL, 60, 60, 1).build()
        self.assertEqual(str(cm.exception), "tick range [60, 60) is empty or inverted")
        with self.assertRaises(ZeroAmount) as cm:
            remove_liquidity(POOL, -60, 60, 0).build()
        self.assertEqual(str(cm.exception), "a liquidity proposal needs a non-zero amount")
        # Slippage is checked first, as in Rust.
        with self.assertRaises(SlippageOutOfRange):
            add_liquidity(POOL, 60, 0, 0).max_slippage_bps(20_000).build()

    def test_liquidity_actions_carry_the_range(self):
        p = remove_liquidity(POOL, -120, 60, 5).build()
        self.assertEqual(p.action, RemoveLiquidity(POOL, -120, 60, "5"))
        self.assertEqual(p.action.kind, "remove-liquidity")
        p = add_liquidity(POOL, -120, 60, 5).sqrt_price_limit(7).build()
        self.assertEqual(p.action, AddLiquidity(POOL, -120, 60, "5"))  # limit ignored

    def test_no_float_gets_in(self):
        for build in (
            lambda: swap(POOL, True, 1.5),
            lambda: swap(POOL, True, 1).expect(1e18, 0),
            lambda: swap(POOL, True, "1e18"),
            lambda: swap(POOL, 1, 1),
            lambda: add_liquidity(POOL, -60.0, 60, 1),
            lambda: add_liquidity(POOL, -60, 1 << 31, 1),
            lambda: swap(POOL, True, 1).max_slippage_bps(-1),
            lambda: swap(POOL, True, -1),
            lambda: swap(POOL, True, 1 << 256),
            lambda: swap(POOL, True, 1).reason(5),
        ):
            with self.assertRaises((TypeError, ValueError)):
                build()


if __name__ == "__main__":
    unittest.main()
