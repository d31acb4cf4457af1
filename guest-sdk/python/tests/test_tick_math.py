import random
import unittest

import _paths  # noqa: F401
from stratbox.v3 import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    NotUint160,
    SqrtPriceOutOfRange,
    TickOutOfRange,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)


def tick_by_search(p):
    """The definition the Solidity implements: greatest tick with ratio <= price."""
    lo, hi = MIN_TICK, MAX_TICK
    while lo < hi:
        mid = lo + (hi - lo + 1) // 2
        if get_sqrt_ratio_at_tick(mid) <= p:
            lo = mid
        else:
            hi = mid - 1
    return lo


class TickMath(unittest.TestCase):
    def test_bounds(self):
        self.assertEqual(get_sqrt_ratio_at_tick(0), 79228162514264337593543950336)
        self.assertEqual(get_sqrt_ratio_at_tick(MIN_TICK), 4295128739)
        self.assertEqual(
            get_sqrt_ratio_at_tick(MAX_TICK), 1461446703485210103287273052203988822378723970342
        )
        self.assertEqual(get_sqrt_ratio_at_tick(MIN_TICK), MIN_SQRT_RATIO)
        self.assertEqual(get_sqrt_ratio_at_tick(MAX_TICK), MAX_SQRT_RATIO)
        self.assertEqual(get_sqrt_ratio_at_tick(MIN_TICK + 1), 4295343490)
        self.assertEqual(
            get_sqrt_ratio_at_tick(MAX_TICK - 1), 1461373636630004318706518188784493106690254656249
        )

    def test_known_values(self):
        # Values of the v3-core TickMath tests (the contract's own results).
        known = {
            -1000: 75364347830767020784054125655,
            -500: 77272108795590369356373805297,
            -250: 78244023372248365697264290337,
            -100: 78833030112140176575862854579,
            -50: 79030349367926598376800521322,
            50: 79426470787362580746886972461,
            100: 79625275426524748796330556128,
            250: 80224679980005306637834519095,
            500: 81233731461783161732293370115,
            1000: 83290069058676223003182343270,
            2500: 89776708723587163891445672585,
            3000: 92049301871182272007977902845,
        }
        for tick, price in known.items():
            with self.subTest(tick=tick):
                self.assertEqual(get_sqrt_ratio_at_tick(tick), price)
                self.assertEqual(get_tick_at_sqrt_ratio(price), tick)
        self.assertEqual(get_tick_at_sqrt_ratio(79228162514264337593543950336), 0)
        self.assertEqual(get_tick_at_sqrt_ratio(79228162514264337593543950335), -1)

    def test_refuses_ticks_out_of_range(self):
        for tick in (MIN_TICK - 1, MAX_TICK + 1, -(1 << 31), (1 << 31) - 1):
            with self.subTest(tick=tick):
                with self.assertRaises(TickOutOfRange) as cm:
                    get_sqrt_ratio_at_tick(tick)
                self.assertEqual(str(cm.exception), f"tick {tick} is outside [-887272, 887272]")

    def test_refuses_prices_out_of_range(self):
        for price in (MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, 0):
            with self.subTest(price=price), self.assertRaises(SqrtPriceOutOfRange):
                get_tick_at_sqrt_ratio(price)
        with self.assertRaises(NotUint160):
            get_tick_at_sqrt_ratio((1 << 256) - 1)

    def test_tick_at_bounds(self):
        self.assertEqual(get_tick_at_sqrt_ratio(MIN_SQRT_RATIO), MIN_TICK)
        self.assertEqual(get_tick_at_sqrt_ratio(4295343490), MIN_TICK + 1)
        self.assertEqual(
            get_tick_at_sqrt_ratio(1461373636630004318706518188784493106690254656249), MAX_TICK - 1
        )
        self.assertEqual(get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1), MAX_TICK - 1)

    def test_round_trips_and_ratios_increase(self):
        rng = random.Random(11)
        ticks = [MIN_TICK, MIN_TICK + 1, -1, 0, 1, MAX_TICK - 1] + [
            rng.randrange(MIN_TICK, MAX_TICK) for _ in range(1500)
        ]
        for tick in ticks:
            p = get_sqrt_ratio_at_tick(tick)
            self.assertLess(p, get_sqrt_ratio_at_tick(tick + 1))
            self.assertEqual(get_tick_at_sqrt_ratio(p), tick)
            if tick > MIN_TICK:
                self.assertEqual(get_tick_at_sqrt_ratio(p - 1), tick - 1)

    def test_tick_matches_its_definition(self):
        rng = random.Random(13)
        for _ in range(200):
            bits = rng.randrange(33, 160)
            p = min(max(rng.getrandbits(bits), MIN_SQRT_RATIO), MAX_SQRT_RATIO - 1)
            self.assertEqual(get_tick_at_sqrt_ratio(p), tick_by_search(p))

    def test_floats_are_refused(self):
        with self.assertRaises(TypeError):
            get_sqrt_ratio_at_tick(1.0)
        with self.assertRaises(TypeError):
            get_tick_at_sqrt_ratio(float(1 << 96))


if __name__ == "__main__":
    unittest.main()
