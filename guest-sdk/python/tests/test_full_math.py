import random
import unittest

import _paths  # noqa: F401
from stratbox.v3 import DivisionByZero, Overflow, mul_div, mul_div_rounding_up

Q128 = 1 << 128
MAX = (1 << 256) - 1


class FullMath(unittest.TestCase):
    def test_refuses_zero_denominator(self):
        with self.assertRaises(DivisionByZero):
            mul_div(Q128, 5, 0)
        with self.assertRaises(DivisionByZero):
            mul_div_rounding_up(Q128, 5, 0)

    def test_refuses_quotient_overflow(self):
        with self.assertRaises(Overflow):
            mul_div(Q128, Q128, 1)
        with self.assertRaises(Overflow):
            mul_div(MAX, MAX, MAX - 1)

    def test_known_vectors(self):
        # From the v3-core FullMath tests.
        self.assertEqual(mul_div(MAX, MAX, MAX), MAX)
        self.assertEqual(mul_div(Q128, 50 * Q128 // 100, 150 * Q128 // 100), Q128 // 3)
        self.assertEqual(mul_div(Q128, 35 * Q128, 8 * Q128), 4375 * Q128 // 1000)
        self.assertEqual(mul_div(Q128, 1000 * Q128, 3000 * Q128), Q128 // 3)
        self.assertEqual(mul_div_rounding_up(Q128, 1000 * Q128, 3000 * Q128), Q128 // 3 + 1)
        # mulDivRoundingUp reverts when the floor is MAX and there is a remainder.
        a = 535006138814359
        b = 432862656469423142931042426214547535783388063929571229938474969
        with self.assertRaises(Overflow):
            mul_div_rounding_up(a, b, 2)

    def test_matches_exact_reference(self):
        rng = random.Random(7)
        for _ in range(2000):
            a, b, d = rng.getrandbits(256), rng.getrandbits(256), rng.getrandbits(rng.randrange(1, 257)) or 1
            exact, rem = divmod(a * b, d)
            if exact > MAX:
                with self.assertRaises(Overflow):
                    mul_div(a, b, d)
                continue
            self.assertEqual(mul_div(a, b, d), exact)
            if rem and exact == MAX:
                with self.assertRaises(Overflow):
                    mul_div_rounding_up(a, b, d)
            else:
                self.assertEqual(mul_div_rounding_up(a, b, d), exact + (1 if rem else 0))

    def test_operands_are_uint256(self):
        for bad in ((-1, 1, 1), (1, 1 << 256, 1), (1.0, 1, 1), (True, 1, 1)):
            with self.subTest(bad=bad), self.assertRaises((TypeError, ValueError)):
                mul_div(*bad)


if __name__ == "__main__":
    unittest.main()
