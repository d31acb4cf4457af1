//! Amounts in risk configuration: base-10 strings of raw units, read with the one strict
//! parser every zone uses (`stratbox-amount`), so a limit cannot be read two ways.

pub use stratbox_amount::{AmountParseError, U256, decimal, decimal_opt, parse_amount};
