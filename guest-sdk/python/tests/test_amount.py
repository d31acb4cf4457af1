import unittest

import _paths  # noqa: F401
from stratbox import amount as am
from stratbox.amount import AmountParseError

MAX_TEXT = "115792089237316195423570985008687907853269984665640564039457584007913129639935"
TWO_POW_256 = "115792089237316195423570985008687907853269984665640564039457584007913129639936"


class ParseWire(unittest.TestCase):
    def refused(self, text):
        with self.assertRaises(AmountParseError) as cm:
            am.parse_wire(text)
        return cm.exception

    def test_accepts_canonical_forms(self):
        self.assertEqual(am.parse_wire("0"), 0)
        self.assertEqual(am.parse_wire("1"), 1)
        self.assertEqual(am.parse_wire("1000000000000000000"), 10**18)
        self.assertEqual(am.parse_wire(MAX_TEXT), 2**256 - 1)
        self.assertEqual(am.to_wire(am.MAX), MAX_TEXT)

    def test_refusals_match_the_rust_parser(self):
        cases = [
            ("", "Empty", "amount is empty"),
            ("-1", "Sign", "amount has a sign ('-'); amounts are unsigned magnitudes"),
            ("+1", "Sign", "amount has a sign ('+'); amounts are unsigned magnitudes"),
            ("-0", "Sign", "amount has a sign ('-'); amounts are unsigned magnitudes"),
            ("1-2", "Sign", "amount has a sign ('-'); amounts are unsigned magnitudes"),
            (" 1", "Whitespace", "amount contains whitespace at byte 0"),
            ("1 ", "Whitespace", "amount contains whitespace at byte 1"),
            ("1\n", "Whitespace", "amount contains whitespace at byte 1"),
            ("1\u00a02", "Whitespace", "amount contains whitespace at byte 1"),
            ("1.5", "DecimalPoint", "amount has a decimal point at byte 1; amounts are integers of raw units"),
            (".5", "DecimalPoint", "amount has a decimal point at byte 0; amounts are integers of raw units"),
            ("1e18", "Exponent", "amount has an exponent ('e') at byte 1; write every digit"),
            ("1E3", "Exponent", "amount has an exponent ('E') at byte 1; write every digit"),
            ("0x10", "InvalidDigit", "amount has a non-digit 'x' at byte 1"),
            ("1_000", "InvalidDigit", "amount has a non-digit '_' at byte 1"),
            ("\uff11", "InvalidDigit", "amount has a non-digit '\uff11' at byte 0"),
            ("\u0661", "InvalidDigit", "amount has a non-digit '\u0661' at byte 0"),
            ("NaN", "InvalidDigit", "amount has a non-digit 'N' at byte 0"),
            ("00", "LeadingZero", 'amount has a leading zero; only "0" itself may start with 0'),
            ("0001000", "LeadingZero", 'amount has a leading zero; only "0" itself may start with 0'),
            (TWO_POW_256, "Overflow", "amount does not fit in 256 bits"),
            ("9" * 79, "Overflow", "amount does not fit in 256 bits"),
        ]
        for text, kind, message in cases:
            with self.subTest(text=text):
                e = self.refused(text)
                self.assertEqual(e.kind, kind)
                self.assertEqual(str(e), message)
                self.assertIsInstance(e, ValueError)

    def test_unicode_whitespace_is_whitespace_but_file_separators_are_not(self):
        # Rust's `char::is_whitespace`, not Python's `str.isspace`.
        self.assertEqual(self.refused("1\u3000").kind, "Whitespace")
        self.assertEqual(str(self.refused("1\x1c")), "amount has a non-digit '\\u{1c}' at byte 1")

    def test_hostile_input_costs_a_length_check(self):
        e = self.refused("1" * (1 << 20))
        self.assertEqual(e.kind, "Overflow")
        self.assertLess(len(str(e)), 200)

    def test_floats_and_bools_and_ints_are_not_wire_strings(self):
        for value in (1.5, 1e18, float("nan"), True, 10, None, b"1"):
            with self.subTest(value=value):
                with self.assertRaises(TypeError):
                    am.parse_wire(value)
        with self.assertRaisesRegex(TypeError, "float"):
            am.parse_wire(1.0)

    def test_round_trip(self):
        for value in (0, 1, 9, 10, 2**64, 2**128 - 1, 2**255, 2**256 - 1):
            self.assertEqual(am.parse_wire(am.to_wire(value)), value)


class AmountValues(unittest.TestCase):
    def test_amount_accepts_ints_and_wire_strings_only(self):
        self.assertEqual(am.amount(5), 5)
        self.assertEqual(am.amount("5"), 5)
        with self.assertRaisesRegex(TypeError, "float"):
            am.amount(5.0)
        with self.assertRaisesRegex(TypeError, "bool"):
            am.amount(True)
        with self.assertRaisesRegex(ValueError, "does not fit in uint256"):
            am.amount(-1)
        with self.assertRaisesRegex(ValueError, "does not fit in uint256"):
            am.amount(2**256)
        with self.assertRaises(AmountParseError):
            am.amount("1.0")

    def test_to_wire_refuses_what_is_not_an_amount(self):
        for bad in (-1, 2**256, 1.0, False):
            with self.subTest(bad=bad), self.assertRaises((TypeError, ValueError)):
                am.to_wire(bad)


class CheckedArithmetic(unittest.TestCase):
    def test_errors(self):
        self.assertEqual(self.err(am.checked_add, am.MAX, 1), am.AmountOverflow())
        self.assertEqual(self.err(am.checked_sub, 0, 1), am.AmountUnderflow())
        self.assertEqual(self.err(am.checked_div, 1, 0), am.AmountDivisionByZero())
        self.assertEqual(self.err(am.checked_mul, am.MAX, 2), am.AmountOverflow())
        self.assertEqual(self.err(am.mul_div, 1, 1, 0), am.AmountDivisionByZero())
        self.assertEqual(self.err(am.mul_div, am.MAX, am.MAX, 1), am.AmountOverflow())
        self.assertEqual(str(am.AmountOverflow()), "amount arithmetic overflowed 256 bits")
        self.assertEqual(str(am.AmountUnderflow()), "amount arithmetic underflowed zero")
        self.assertEqual(str(am.AmountDivisionByZero()), "amount divided by zero")

    def err(self, fn, *args):
        with self.assertRaises(am.AmountError) as cm:
            fn(*args)
        return cm.exception

    def test_values(self):
        self.assertEqual(am.checked_mul(7, 6), 42)
        self.assertEqual(am.checked_add(2, 3), 5)
        self.assertEqual(am.checked_sub(5, 3), 2)
        self.assertEqual(am.checked_div(7, 2), 3)
        # The 512-bit intermediate: MAX * MAX / MAX is MAX, not an overflow.
        self.assertEqual(am.mul_div(am.MAX, am.MAX, am.MAX), am.MAX)

    def test_basis_points(self):
        a = 1_000_000
        self.assertEqual(am.less_bps(a, 50), 995_000)
        self.assertEqual(am.plus_bps(a, 50), 1_005_000)
        self.assertEqual(am.less_bps(3, 1), 2)
        self.assertEqual(am.plus_bps(3, 1), 4)
        self.assertEqual(am.less_bps(a, 10_000), 0)
        with self.assertRaises(am.BpsOutOfRange) as cm:
            am.less_bps(a, 10_001)
        self.assertEqual(str(cm.exception), "basis points 10001 exceed 10000")
        with self.assertRaises(am.BpsOutOfRange):
            am.plus_bps(a, 10_001)
        with self.assertRaises(am.AmountOverflow):
            am.plus_bps(am.MAX, 1)
        with self.assertRaises(TypeError):
            am.less_bps(a, 0.5)


if __name__ == "__main__":
    unittest.main()
