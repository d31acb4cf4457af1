//! The gas-price gate: a spike in the network's gas price refuses every trade until it
//! passes, with the stable code `gas_price`.
//!
//! The engine passes the price it would execute at (the chain's base fee plus tip, or an
//! operator's setting) in wei as a `U256`, so a hostile or corrupt value of any size is
//! judged, never truncated.

use ruint::aliases::U256;

use crate::config::GasConfig;
use crate::reason::{ReasonCode, Rejection};

const WEI_PER_GWEI: u64 = 1_000_000_000;

/// Refuses `gas_price_wei` above `max_gas_price_gwei` (exactly the cap passes).
pub fn check(cfg: &GasConfig, gas_price_wei: U256) -> Result<(), Rejection> {
    let cap = U256::from(cfg.max_gas_price_gwei).saturating_mul(U256::from(WEI_PER_GWEI));
    if gas_price_wei > cap {
        return Err(Rejection::new(
            ReasonCode::GasPrice,
            format!(
                "gas price {gas_price_wei} wei is over the cap of {} gwei",
                cfg.max_gas_price_gwei
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_is_inclusive_and_any_size_is_judged() {
        let cfg = GasConfig {
            max_gas_price_gwei: 100,
        };
        let gwei = |g: u64| U256::from(g) * U256::from(WEI_PER_GWEI);
        assert!(check(&cfg, U256::ZERO).is_ok());
        assert!(check(&cfg, gwei(100)).is_ok());
        assert_eq!(
            check(&cfg, gwei(100) + U256::from(1u8)).unwrap_err().code,
            ReasonCode::GasPrice
        );
        assert_eq!(
            check(&cfg, U256::MAX).unwrap_err().code,
            ReasonCode::GasPrice
        );
    }
}
