"""Reading an operator's JSON config with the strictness of the Rust strategies' serde.

A Rust strategy declares its config as a `#[serde(deny_unknown_fields)]` struct and
serde refuses a misspelt key, a missing field, a float where an integer belongs and a
number where an amount string belongs. Python's `json` accepts all of those. These
helpers refuse them again, in serde's words (without its line and column), so a config
that one SDK refuses the other refuses too, and a typo never silently falls back to a
default.
"""

import json
from decimal import Decimal

from .amount import parse_wire
from .errors import ConfigError
from .ints import I32_MAX, I32_MIN, U32_MAX

_I64_MIN = -(1 << 63)
_U64_MAX = (1 << 64) - 1


def _reject_constant(name):
    raise ConfigError(f"{name} is not JSON")


def _refuse_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ConfigError(f"duplicate field `{key}`")
        seen[key] = value
    return seen


def load_json(text):
    """`text` parsed as strict JSON: no NaN or Infinity, no duplicate keys.

    Raises `ConfigError` with the reason; a `TypeError` if `text` is not a `str`.
    """
    if not isinstance(text, str):
        raise TypeError(f"config must be a str, got {type(text).__name__}")
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{e.msg} at line {e.lineno} column {e.colno}") from None


def _float_text(value):
    """serde's rendering of an f64 in an error (Rust `Display`, never an exponent, with
    a `.0` where there is no point). Only used to name a refused value."""
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def unexpected(value):
    """serde's `Unexpected` text for a JSON value of the wrong type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        # serde_json reads integers outside i64/u64 as f64, and names them so. The float
        # here only renders a refused config value in the error; it never becomes data.
        if value < _I64_MIN or value > _U64_MAX:
            return f"floating point `{_float_text(float(value))}`"
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{_float_text(value)}`"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


def _integer(value, low, high, rust_type):
    if isinstance(value, int) and not isinstance(value, bool):
        if value < _I64_MIN or value > _U64_MAX:
            raise ConfigError(f"invalid type: {unexpected(value)}, expected {rust_type}")
        if value < low or value > high:
            raise ConfigError(f"invalid value: integer `{value}`, expected {rust_type}")
        return value
    raise ConfigError(f"invalid type: {unexpected(value)}, expected {rust_type}")


def i32_field(value):
    """A JSON integer that fits an `i32`."""
    return _integer(value, I32_MIN, I32_MAX, "i32")


def u32_field(value):
    """A JSON integer that fits a `u32`."""
    return _integer(value, 0, U32_MAX, "u32")


def string_field(value):
    """A JSON string."""
    if isinstance(value, str):
        return value
    raise ConfigError(f"invalid type: {unexpected(value)}, expected a string")


def amount_field(value):
    """An amount: a JSON *string* in the strict wire form, never a JSON number (a JSON
    number above 2^53 is silently rounded by most readers)."""
    if not isinstance(value, str):
        raise ConfigError(f"invalid type: {unexpected(value)}, expected a base-10 string of raw units")
    return parse_wire(value)


def read_struct(value, struct_name, fields):
    """The fields of a serde `deny_unknown_fields` struct, as a dict.

    `fields` is a list of `(name, reader)` in declaration order; a reader is one of the
    `*_field` functions or any callable raising `ConfigError`/`StrategyError`. Like serde,
    a JSON array is read as the fields in declaration order, errors come in document
    order, and missing fields are reported after the whole object is read.
    """
    names = [name for name, _ in fields]
    if isinstance(value, list):
        out = {}
        for (name, reader), item in zip(fields, value):
            out[name] = reader(item)
        if len(value) < len(fields):
            raise ConfigError(
                f"invalid length {len(value)}, expected struct {struct_name} with {len(fields)} elements"
            )
        if len(value) > len(fields):
            raise ConfigError("trailing characters")
        return out
    if not isinstance(value, dict):
        raise ConfigError(f"invalid type: {unexpected(value)}, expected struct {struct_name}")
    readers = dict(fields)
    out = {}
    for key, item in value.items():
        if key not in readers:
            expected = ", ".join(f"`{n}`" for n in names)
            raise ConfigError(f"unknown field `{key}`, expected one of {expected}")
        out[key] = readers[key](item)
    for name in names:
        if name not in out:
            raise ConfigError(f"missing field `{name}`")
    return {name: out[name] for name in names}
