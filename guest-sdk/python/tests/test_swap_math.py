import random
import unittest

import _paths  # noqa: F401
from stratbox.v3 import (
    Q96,
    AmountRemainingOutOfRange,
    InvalidFee,
    MathError,
    NotUint160,
    compute_swap_step,
    get_next_sqrt_price_from_input,
)

E18 = 10**18


class ComputeSwapStep(unittest.TestCase):
    # Vectors of the v3-core SwapMath tests, as in the Rust SDK.
    def test_exact_in_capped_at_price_target_one_for_zero(self):
        price_target = 79623317895830914510639640423  # encodePriceSqrt(101, 100)
        liquidity = 2 * E18
        step = compute_swap_step(Q96, price_target, liquidity, E18, True, 600)
        self.assertEqual(step.amount_in, 9975124224178055)
        self.assertEqual(step.fee_amount, 5988667735148)
        self.assertEqual(step.amount_out, 9925619580021728)
        self.assertLess(step.amount_in + step.fee_amount, E18)
        whole = get_next_sqrt_price_from_input(Q96, liquidity, E18, False)
        self.assertEqual(step.sqrt_ratio_next_x96, price_target)
        self.assertLess(step.sqrt_ratio_next_x96, whole)

    def test_exact_out_capped_at_price_target_one_for_zero(self):
        price_target = 79623317895830914510639640423
        step = compute_swap_step(Q96, price_target, 2 * E18, E18, False, 600)
        self.assertEqual(
            tuple(step), (price_target, 9975124224178055, 9925619580021728, 5988667735148)
        )

    def test_exact_in_fully_spent_one_for_zero(self):
        price_target = 250541448375047931186413801569  # encodePriceSqrt(1000, 100)
        liquidity = 2 * E18
        step = compute_swap_step(Q96, price_target, liquidity, E18, True, 600)
        self.assertEqual(step.amount_in, 999400000000000000)
        self.assertEqual(step.fee_amount, 600000000000000)
        self.assertEqual(step.amount_out, 666399946655997866)
        self.assertEqual(step.amount_in + step.fee_amount, E18)
        self.assertLess(step.sqrt_ratio_next_x96, price_target)
        self.assertEqual(
            step.sqrt_ratio_next_x96,
            get_next_sqrt_price_from_input(Q96, liquidity, step.amount_in, False),
        )

    def test_exact_out_fully_received_one_for_zero(self):
        price_target = 792281625142643375935439503360  # encodePriceSqrt(10000, 100)
        step = compute_swap_step(Q96, price_target, 2 * E18, E18, False, 600)
        self.assertEqual(step.amount_in, 2000000000000000000)
        self.assertEqual(step.fee_amount, 1200720432259356)
        self.assertEqual(step.amount_out, E18)
        self.assertLess(step.sqrt_ratio_next_x96, price_target)

    def test_amount_out_is_capped_at_the_desired_amount_out(self):
        step = compute_swap_step(
            417332158212080721273783715441582,
            1452870262520218020823638996,
            159344665391607089467575320103,
            1,
            False,
            1,
        )
        self.assertEqual(tuple(step), (417332158212080721273783715441581, 1, 1, 1))

    def test_target_price_of_1_uses_partial_input_amount(self):
        remaining = 3915081100057732413702495386755767
        step = compute_swap_step(2, 1, 1, remaining, True, 1)
        self.assertEqual(step.amount_in, 39614081257132168796771975168)
        self.assertEqual(step.fee_amount, 39614120871253040049813)
        self.assertLessEqual(step.amount_in + step.fee_amount, remaining)
        self.assertEqual(step.amount_out, 0)
        self.assertEqual(step.sqrt_ratio_next_x96, 1)

    def test_entire_input_amount_taken_as_fee(self):
        step = compute_swap_step(2413, 79887613182836312, 1985041575832132834610021537970, 10, True, 1872)
        self.assertEqual(tuple(step), (2413, 0, 0, 10))

    def test_intermediate_insufficient_liquidity_zero_for_one_exact_output(self):
        sqrt_p = 20282409603651670423947251286016
        target = sqrt_p * 11 // 10
        step = compute_swap_step(sqrt_p, target, 1024, 4, False, 3000)
        self.assertEqual(tuple(step), (target, 26215, 0, 79))

    def test_intermediate_insufficient_liquidity_one_for_zero_exact_output(self):
        sqrt_p = 20282409603651670423947251286016
        target = sqrt_p * 9 // 10
        step = compute_swap_step(sqrt_p, target, 1024, 263000, False, 3000)
        self.assertEqual(tuple(step), (target, 1, 26214, 1))

    def test_refuses_what_solidity_would_revert_on(self):
        with self.assertRaises(InvalidFee) as cm:
            compute_swap_step(Q96, Q96 // 2, 1, 1, True, 1_000_000)
        self.assertEqual(str(cm.exception), "fee 1000000 pips is not below 1000000")
        with self.assertRaises(AmountRemainingOutOfRange):
            compute_swap_step(Q96, Q96 // 2, 1, 1 << 255, True, 3000)
        # Exact-out admits exactly 2^255 (int256 min), exact-in does not.
        compute_swap_step(Q96, Q96 // 2, 1, 1 << 255, False, 3000)
        with self.assertRaises(NotUint160):
            compute_swap_step((1 << 256) - 1, Q96, 1, 1, True, 3000)

    def test_zero_remaining_is_exact_in_whatever_the_flag(self):
        a = compute_swap_step(Q96, Q96 // 2, E18, 0, False, 3000)
        b = compute_swap_step(Q96, Q96 // 2, E18, 0, True, 3000)
        self.assertEqual(a, b)

    def test_invariants_on_random_input(self):
        """The v3-core SwapMath echidna properties; and nothing but a MathError."""
        rng = random.Random(3)
        for _ in range(3000):
            current = rng.getrandbits(rng.randrange(1, 161))
            target = rng.getrandbits(rng.randrange(1, 161))
            liquidity = rng.getrandbits(128)
            remaining = rng.getrandbits(rng.randrange(0, 257))
            exact_in = rng.random() < 0.5
            fee = rng.randrange(0, 1_000_000)
            try:
                step = compute_swap_step(current, target, liquidity, remaining, exact_in, fee)
            except MathError:
                continue
            exact_in = exact_in or remaining == 0
            if exact_in:
                self.assertLessEqual(step.amount_in + step.fee_amount, remaining)
            else:
                self.assertLessEqual(step.amount_out, remaining)
            if current >= target:
                self.assertTrue(target <= step.sqrt_ratio_next_x96 <= current)
            else:
                self.assertTrue(current <= step.sqrt_ratio_next_x96 <= target)
            echidna = current and target and fee
            if step.sqrt_ratio_next_x96 != target and echidna:
                if exact_in:
                    self.assertEqual(step.amount_in + step.fee_amount, remaining)
                else:
                    self.assertEqual(step.amount_out, remaining)


if __name__ == "__main__":
    unittest.main()
