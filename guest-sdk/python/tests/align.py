#!/usr/bin/env python3
"""Checks the Python SDK against results the Rust SDK computed for the same inputs.

Reads a JSON list of cases from stdin:

    [{"fn": NAME, "args": [...], "expect": RESULT}, ...]

computes each with the Python SDK and prints `{"checked": N, "mismatches": [...]}`.
Exit status: 0 if every case matched, 1 on any mismatch (or unsupported `fn`), 2 if the
input is not such a list.

Values
    An integer argument or result may be a JSON number or a base-10 string ("-600"
    too, for ticks and the signed swap amount). A bool is a JSON `true`/`false`. A
    tuple result is a JSON list. A `str` argument (only `parse_amount`) is taken as is.
    `expect` may instead be `{"error": true}` (any refusal matches), or
    `{"error": "KIND"}` where KIND is the Rust variant (`"Overflow"`, also written
    `"ResultOverflow(160)"` as Rust's Debug does) or its Display message.

Supported `fn`, with the Rust SDK's names and argument order exactly
(`guest-sdk/src/math/*.rs`, `guest-sdk/src/amount.rs`, `crates/amount`):

  full_math
    mul_div(a, b, denominator) -> int
    mul_div_rounding_up(a, b, denominator) -> int
  tick_math
    get_sqrt_ratio_at_tick(tick) -> int
    get_tick_at_sqrt_ratio(sqrt_price_x96) -> int
  sqrt_price_math
    get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity, round_up) -> int
    get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity, round_up) -> int
    get_next_sqrt_price_from_input(sqrt_px96, liquidity, amount_in, zero_for_one) -> int
    get_next_sqrt_price_from_output(sqrt_px96, liquidity, amount_out, zero_for_one) -> int
    get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount, add) -> int
    get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount, add) -> int
  swap_math
    compute_swap_step(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity,
                      amount_remaining, exact_in, fee_pips)
        -> [sqrt_ratio_next_x96, amount_in, amount_out, fee_amount]
      (the Rust signature: magnitude plus `exact_in`). Also accepted with 5 arguments,
      Solidity's way: (current, target, liquidity, amount_remaining_signed, fee_pips),
      where a negative int256 means exact output; it is split exactly as Rust's doc
      says (exact_in = amount >= 0, magnitude = |amount|).
  liquidity_amounts
    get_liquidity_for_amount0(sqrt_ratio_a_x96, sqrt_ratio_b_x96, amount0) -> int
    get_liquidity_for_amount1(sqrt_ratio_a_x96, sqrt_ratio_b_x96, amount1) -> int
    get_liquidity_for_amounts(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96,
                              amount0, amount1) -> int
    get_amount0_for_liquidity(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity) -> int
    get_amount1_for_liquidity(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity) -> int
    get_amounts_for_liquidity(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96,
                              liquidity) -> [amount0, amount1]
    amounts_for_mint(sqrt_ratio_x96, sqrt_ratio_a_x96, sqrt_ratio_b_x96,
                     liquidity) -> [amount0, amount1]
  price
    token0_in_token1(amount0, sqrt_price_x96) -> int
    token0_in_token1_wide(amount0, sqrt_price_x96) -> int (up to 512 bits)
    spot_price_e18(sqrt_price_x96) -> int
    input_for_step(zero_for_one, sqrt_price_x96, liquidity, step_ppm, floor) -> int
  amount (Rust `Amount` methods; the receiver is the first argument)
    parse_amount(text: str) -> int
    checked_add(a, b), checked_sub(a, b), checked_mul(a, b), checked_div(a, b) -> int
    amount_mul_div(a, mul, div) -> int          (Rust `Amount::mul_div`)
    less_bps(amount, bps), plus_bps(amount, bps) -> int

An argument outside its Rust type (a liquidity of 2^128, a negative amount) cannot
come from the Rust side; such a case is reported as a mismatch, never silently fitted.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stratbox import amount as am  # noqa: E402
from stratbox import v3  # noqa: E402
from stratbox.errors import StrategyError  # noqa: E402
from stratbox.ints import IntegerRangeError, IntegerTypeError  # noqa: E402

I, B, S = "int", "bool", "str"


def _signed_swap_step(current, target, liquidity, amount_remaining, fee_pips):
    return v3.compute_swap_step(
        current, target, liquidity, abs(amount_remaining), amount_remaining >= 0, fee_pips
    )


def _swap_step(*args):
    return _signed_swap_step(*args) if len(args) == 5 else v3.compute_swap_step(*args)


# name -> (function, argument kinds); a tuple of kind lists means several arities.
FUNCTIONS = {
    "mul_div": (v3.mul_div, [I, I, I]),
    "mul_div_rounding_up": (v3.mul_div_rounding_up, [I, I, I]),
    "get_sqrt_ratio_at_tick": (v3.get_sqrt_ratio_at_tick, [I]),
    "get_tick_at_sqrt_ratio": (v3.get_tick_at_sqrt_ratio, [I]),
    "get_amount0_delta": (v3.get_amount0_delta, [I, I, I, B]),
    "get_amount1_delta": (v3.get_amount1_delta, [I, I, I, B]),
    "get_next_sqrt_price_from_input": (v3.get_next_sqrt_price_from_input, [I, I, I, B]),
    "get_next_sqrt_price_from_output": (v3.get_next_sqrt_price_from_output, [I, I, I, B]),
    "get_next_sqrt_price_from_amount0_rounding_up": (v3.get_next_sqrt_price_from_amount0_rounding_up, [I, I, I, B]),
    "get_next_sqrt_price_from_amount1_rounding_down": (v3.get_next_sqrt_price_from_amount1_rounding_down, [I, I, I, B]),
    "compute_swap_step": (_swap_step, ([I, I, I, I, B, I], [I, I, I, I, I])),
    "get_liquidity_for_amount0": (v3.get_liquidity_for_amount0, [I, I, I]),
    "get_liquidity_for_amount1": (v3.get_liquidity_for_amount1, [I, I, I]),
    "get_liquidity_for_amounts": (v3.get_liquidity_for_amounts, [I, I, I, I, I]),
    "get_amount0_for_liquidity": (v3.get_amount0_for_liquidity, [I, I, I]),
    "get_amount1_for_liquidity": (v3.get_amount1_for_liquidity, [I, I, I]),
    "get_amounts_for_liquidity": (v3.get_amounts_for_liquidity, [I, I, I, I]),
    "amounts_for_mint": (v3.amounts_for_mint, [I, I, I, I]),
    "token0_in_token1": (v3.token0_in_token1, [I, I]),
    "token0_in_token1_wide": (v3.token0_in_token1_wide, [I, I]),
    "spot_price_e18": (v3.spot_price_e18, [I]),
    "input_for_step": (v3.input_for_step, [B, I, I, I, I]),
    "parse_amount": (am.parse_wire, [S]),
    "checked_add": (am.checked_add, [I, I]),
    "checked_sub": (am.checked_sub, [I, I]),
    "checked_mul": (am.checked_mul, [I, I]),
    "checked_div": (am.checked_div, [I, I]),
    "amount_mul_div": (am.mul_div, [I, I, I]),
    "less_bps": (am.less_bps, [I, I]),
    "plus_bps": (am.plus_bps, [I, I]),
}

_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)\Z")


class BadCase(Exception):
    """A case this script cannot read; reported as a mismatch."""


def _int(value):
    if isinstance(value, bool):
        raise BadCase(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_TEXT.match(value):
        return int(value)
    raise BadCase(f"expected an integer or its base-10 string, got {value!r}")


def _convert(kinds, args):
    if not isinstance(args, list):
        raise BadCase("args must be a list")
    options = kinds if isinstance(kinds, tuple) else (kinds,)
    for option in options:
        if len(option) == len(args):
            break
    else:
        arities = " or ".join(str(len(o)) for o in options)
        raise BadCase(f"expected {arities} arguments, got {len(args)}")
    out = []
    for kind, value in zip(option, args):
        if kind == I:
            out.append(_int(value))
        elif kind == B:
            if not isinstance(value, bool):
                raise BadCase(f"expected a bool, got {value!r}")
            out.append(value)
        else:
            if not isinstance(value, str):
                raise BadCase(f"expected a string, got {value!r}")
            out.append(value)
    return out


def _canonical(value):
    """Results as JSON: ints as base-10 strings (they exceed 2^53), tuples as lists."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    return value


def _expected(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):
        return str(_int(value))
    if isinstance(value, list):
        return [_expected(v) for v in value]
    raise BadCase(f"cannot read expect {value!r}")


def _error_matches(want, exc):
    if want is True:
        return True
    kind = getattr(exc, "kind", type(exc).__name__)
    if want in (kind, str(exc)):
        return True
    # Rust's Debug of a tuple variant, e.g. "ResultOverflow(160)".
    detail = next((v for k, v in vars(exc).items() if k != "kind"), None)
    return detail is not None and want == f"{kind}({detail})"


def check(case):
    """None if `case` matches, else what went wrong."""
    if not isinstance(case, dict) or "fn" not in case or "expect" not in case:
        return {"problem": "a case needs fn, args and expect"}
    name = case["fn"]
    if name not in FUNCTIONS:
        return {"problem": f"unsupported fn {name!r}"}
    function, kinds = FUNCTIONS[name]
    try:
        args = _convert(kinds, case.get("args", []))
        expect = case["expect"]
        want_error = expect.get("error") if isinstance(expect, dict) else None
        if isinstance(expect, dict) and want_error is None:
            raise BadCase("an expect object must be {\"error\": ...}")
        want = None if want_error is not None else _expected(expect)
    except BadCase as e:
        return {"problem": str(e)}
    try:
        got = _canonical(function(*args))
    except (IntegerRangeError, IntegerTypeError) as e:
        return {"problem": f"argument outside its Rust type: {e}"}
    except StrategyError as e:
        described = {"error": getattr(e, "kind", type(e).__name__), "message": str(e)}
        if want_error is not None and _error_matches(want_error, e):
            return None
        return {"got": described}
    if want_error is not None or got != want:
        return {"got": got}
    return None


def main():
    try:
        cases = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        print(f"align.py: stdin is not JSON: {e}", file=sys.stderr)
        return 2
    if not isinstance(cases, list):
        print("align.py: stdin must be a JSON list of cases", file=sys.stderr)
        return 2
    mismatches = []
    for index, case in enumerate(cases):
        problem = check(case)
        if problem is not None:
            entry = {"index": index}
            if isinstance(case, dict):
                entry.update({k: case.get(k) for k in ("fn", "args", "expect")})
            entry.update(problem)
            mismatches.append(entry)
    json.dump({"checked": len(cases), "mismatches": mismatches}, sys.stdout)
    sys.stdout.write("\n")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
