import json
import os
import subprocess
import sys
import unittest

import _paths

ALIGN = os.path.join(_paths.HERE, "align.py")
Q96 = str(1 << 96)


def run(cases):
    done = subprocess.run(
        [sys.executable, ALIGN], input=json.dumps(cases), capture_output=True, text=True, check=False
    )
    return done.returncode, json.loads(done.stdout) if done.stdout else None


class Align(unittest.TestCase):
    def test_matching_cases_exit_zero(self):
        code, report = run(
            [
                {"fn": "get_sqrt_ratio_at_tick", "args": [0], "expect": Q96},
                {"fn": "get_sqrt_ratio_at_tick", "args": ["-887273"], "expect": {"error": "TickOutOfRange(-887273)"}},
                {"fn": "get_tick_at_sqrt_ratio", "args": [Q96], "expect": 0},
                {"fn": "mul_div", "args": [1, 2, 0], "expect": {"error": True}},
                {"fn": "mul_div_rounding_up", "args": ["7", "1", "2"], "expect": "4"},
                {"fn": "get_amount0_delta", "args": [Q96, "87150978765690771352898345369", str(10**18), True], "expect": "90909090909090910"},
                {"fn": "compute_swap_step", "args": [Q96, "79623317895830914510639640423", str(2 * 10**18), str(10**18), True, 600],
                 "expect": ["79623317895830914510639640423", "9975124224178055", "9925619580021728", "5988667735148"]},
                {"fn": "compute_swap_step", "args": [Q96, "79623317895830914510639640423", str(2 * 10**18), str(-(10**18)), 600],
                 "expect": ["79623317895830914510639640423", "9975124224178055", "9925619580021728", "5988667735148"]},
                {"fn": "get_amounts_for_liquidity", "args": [Q96, "75541088972021055232360200088", "83095197869223157896060286990", 2148], "expect": [99, 99]},
                {"fn": "amounts_for_mint", "args": [Q96, "75541088972021055232360200088", "83095197869223157896060286990", 2148], "expect": ["100", "100"]},
                {"fn": "get_liquidity_for_amounts", "args": [Q96, "75541088972021055232360200088", "83095197869223157896060286990", 100, 200], "expect": 2148},
                {"fn": "parse_amount", "args": ["1e18"], "expect": {"error": "Exponent"}},
                {"fn": "less_bps", "args": [1000000, 50], "expect": 995000},
            ]
        )
        self.assertEqual((code, report), (0, {"checked": 13, "mismatches": []}))

    def test_mismatches_exit_one(self):
        code, report = run(
            [
                {"fn": "get_sqrt_ratio_at_tick", "args": [0], "expect": "1"},
                {"fn": "get_sqrt_ratio_at_tick", "args": [0], "expect": {"error": True}},
                {"fn": "no_such_fn", "args": [], "expect": 0},
                {"fn": "get_amount1_delta", "args": [Q96, Q96, str(1 << 128), True], "expect": {"error": True}},
            ]
        )
        self.assertEqual(code, 1)
        self.assertEqual(report["checked"], 4)
        self.assertEqual([m["index"] for m in report["mismatches"]], [0, 1, 2, 3])
        self.assertEqual(report["mismatches"][0]["got"], Q96)
        self.assertIn("outside its Rust type", report["mismatches"][3]["problem"])

    def test_bad_input_exits_two(self):
        done = subprocess.run([sys.executable, ALIGN], input="{}", capture_output=True, text=True, check=False)
        self.assertEqual(done.returncode, 2)


if __name__ == "__main__":
    unittest.main()
