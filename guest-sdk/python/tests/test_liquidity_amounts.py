import unittest

import _paths  # noqa: F401
from stratbox.v3 import (
    Q96,
    DivisionByZero,
    Overflow,
    ResultOverflow,
    amounts_for_mint,
    get_amount0_for_liquidity,
    get_amounts_for_liquidity,
    get_liquidity_for_amount1,
    get_liquidity_for_amounts,
)

P_1_1 = Q96
P_100_110 = 75541088972021055232360200088
P_110_100 = 83095197869223157896060286990
BELOW = 75162434512514379355924140470
ABOVE = 83472048772503200000000000000


class LiquidityAmounts(unittest.TestCase):
    # Vectors of the v3-periphery LiquidityAmounts tests, as in the Rust SDK.
    def test_liquidity_for_amounts(self):
        for price, expected in ((P_1_1, 2148), (BELOW, 1048), (ABOVE, 2097), (P_100_110, 1048), (P_110_100, 2097)):
            with self.subTest(price=price):
                self.assertEqual(get_liquidity_for_amounts(price, P_100_110, P_110_100, 100, 200), expected)

    def test_amounts_for_liquidity(self):
        cases = (
            (P_1_1, 2148, (99, 99)),
            (BELOW, 1048, (99, 0)),
            (ABOVE, 2097, (0, 199)),
            (P_100_110, 1048, (99, 0)),
            (P_110_100, 2097, (0, 199)),
        )
        for price, liquidity, expected in cases:
            with self.subTest(price=price):
                self.assertEqual(get_amounts_for_liquidity(price, P_100_110, P_110_100, liquidity), expected)

    def test_mint_rounds_up_burn_rounds_down(self):
        m0, m1 = amounts_for_mint(P_1_1, P_100_110, P_110_100, 2148)
        b0, b1 = get_amounts_for_liquidity(P_1_1, P_100_110, P_110_100, 2148)
        self.assertEqual((m0, m1), (100, 100))
        self.assertTrue(m0 >= b0 and m1 >= b1)
        # The bounds may come in either order.
        self.assertEqual(amounts_for_mint(P_1_1, P_110_100, P_100_110, 2148), (100, 100))

    def test_refuses_overflow_and_empty_ranges(self):
        with self.assertRaises(DivisionByZero):
            get_liquidity_for_amount1(P_1_1, P_1_1, 1)
        with self.assertRaises(Overflow):
            get_liquidity_for_amount1(P_100_110, P_110_100, ((1 << 256) - 1) >> 1)
        with self.assertRaises(ResultOverflow) as cm:
            get_liquidity_for_amount1(P_100_110, P_110_100, 1 << 130)
        self.assertEqual(str(cm.exception), "result does not fit in uint128")
        with self.assertRaises(DivisionByZero):
            get_amount0_for_liquidity(0, P_1_1, 1)


if __name__ == "__main__":
    unittest.main()
