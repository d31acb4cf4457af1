import unittest

import _paths  # noqa: F401
from stratbox.v3 import (
    Q96,
    InsufficientLiquidity,
    NotUint160,
    Overflow,
    ResultOverflow,
    ZeroLiquidity,
    ZeroPrice,
    get_amount0_delta,
    get_amount1_delta,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
)

E18 = 10**18
MAX = (1 << 256) - 1
MAX_U160 = (1 << 160) - 1
PRICE_1_1 = Q96  # encodePriceSqrt(1, 1)


class NextPriceFromInput(unittest.TestCase):
    # Vectors of the v3-core SqrtPriceMath tests, as in the Rust SDK.
    def test_refusals(self):
        with self.assertRaises(ZeroPrice):
            get_next_sqrt_price_from_input(0, 1, E18 // 10, False)
        with self.assertRaises(ZeroLiquidity):
            get_next_sqrt_price_from_input(1, 0, E18 // 10, True)
        with self.assertRaises(ResultOverflow) as cm:
            get_next_sqrt_price_from_input(MAX_U160, 1024, 1024, False)
        self.assertEqual(str(cm.exception), "result does not fit in uint160")

    def test_values(self):
        # Any input amount cannot underflow the price.
        self.assertEqual(get_next_sqrt_price_from_input(1, 1, 1 << 255, True), 1)
        l17 = 10**17
        self.assertEqual(get_next_sqrt_price_from_input(PRICE_1_1, l17, 0, True), PRICE_1_1)
        self.assertEqual(get_next_sqrt_price_from_input(PRICE_1_1, l17, 0, False), PRICE_1_1)
        liquidity = (1 << 128) - 1
        max_amount_no_overflow = MAX - ((liquidity << 96) // MAX_U160)
        self.assertEqual(
            get_next_sqrt_price_from_input(MAX_U160, liquidity, max_amount_no_overflow, True), 1
        )
        self.assertEqual(
            get_next_sqrt_price_from_input(PRICE_1_1, E18, E18 // 10, False),
            87150978765690771352898345369,
        )
        self.assertEqual(
            get_next_sqrt_price_from_input(PRICE_1_1, E18, E18 // 10, True),
            72025602285694852357767227579,
        )
        self.assertEqual(
            get_next_sqrt_price_from_input(PRICE_1_1, 10**19, 1 << 100, True), 624999999995069620
        )
        self.assertEqual(get_next_sqrt_price_from_input(PRICE_1_1, 1, MAX // 2, True), 1)


class NextPriceFromOutput(unittest.TestCase):
    def test_refusals(self):
        with self.assertRaises(ZeroPrice):
            get_next_sqrt_price_from_output(0, 1, E18 // 10, False)
        with self.assertRaises(ZeroLiquidity):
            get_next_sqrt_price_from_output(1, 0, E18 // 10, True)
        price = 20282409603651670423947251286016
        for amount, zero_for_one in ((4, False), (5, False), (262144, True), (262145, True)):
            with self.subTest(amount=amount), self.assertRaises(InsufficientLiquidity):
                get_next_sqrt_price_from_output(price, 1024, amount, zero_for_one)
        with self.assertRaises(Overflow):
            get_next_sqrt_price_from_output(PRICE_1_1, 1, MAX, True)
        with self.assertRaises(InsufficientLiquidity):
            get_next_sqrt_price_from_output(PRICE_1_1, 1, MAX, False)

    def test_values(self):
        price = 20282409603651670423947251286016
        self.assertEqual(
            get_next_sqrt_price_from_output(price, 1024, 262143, True), 77371252455336267181195264
        )
        self.assertEqual(
            get_next_sqrt_price_from_output(PRICE_1_1, E18, E18 // 10, False),
            88031291682515930659493278152,
        )
        self.assertEqual(
            get_next_sqrt_price_from_output(PRICE_1_1, E18, E18 // 10, True),
            71305346262837903834189555302,
        )


class AmountDeltas(unittest.TestCase):
    def test_zero_liquidity_or_equal_prices(self):
        self.assertEqual(get_amount0_delta(PRICE_1_1, 112045541949572279837463876454, 0, True), 0)
        self.assertEqual(get_amount0_delta(PRICE_1_1, PRICE_1_1, 0, True), 0)

    def test_price_one_to_one_point_two_one(self):
        p121 = 87150978765690771352898345369
        a0 = get_amount0_delta(PRICE_1_1, p121, E18, True)
        self.assertEqual(a0, 90909090909090910)
        self.assertEqual(get_amount0_delta(PRICE_1_1, p121, E18, False), a0 - 1)
        a1 = get_amount1_delta(PRICE_1_1, p121, E18, True)
        self.assertEqual(a1, 100000000000000000)
        self.assertEqual(get_amount1_delta(PRICE_1_1, p121, E18, False), a1 - 1)
        # The order of the two prices does not matter.
        self.assertEqual(get_amount0_delta(p121, PRICE_1_1, E18, True), a0)

    def test_prices_that_overflow_the_product(self):
        p_hi = 2787593149816327892691964784081045188247552
        p_lo = 22300745198530623141535718272648361505980416
        up = get_amount0_delta(p_hi, p_lo, E18, True)
        down = get_amount0_delta(p_hi, p_lo, E18, False)
        self.assertEqual(up, down + 1)

    def test_refusals(self):
        with self.assertRaises(ZeroPrice):
            get_amount0_delta(0, PRICE_1_1, E18, True)
        with self.assertRaises(NotUint160):
            get_amount0_delta(MAX, PRICE_1_1, E18, True)
        with self.assertRaises(ValueError):
            get_amount1_delta(PRICE_1_1, PRICE_1_1 + 1, 1 << 128, True)

    def test_swap_computation_regression(self):
        # v3-core "swap computation": sqrtP * sqrtQ overflows.
        sqrt_p = 1025574284609383690408304870162715216695788925244
        liquidity = 50015962439936049619261659728067971248
        sqrt_q = get_next_sqrt_price_from_input(sqrt_p, liquidity, 406, True)
        self.assertEqual(sqrt_q, 1025574284609383582644711336373707553698163132913)
        self.assertEqual(get_amount0_delta(sqrt_q, sqrt_p, liquidity, True), 406)


if __name__ == "__main__":
    unittest.main()
