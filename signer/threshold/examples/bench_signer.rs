//! Runs the signer benchmark that `stratbox bench signer` prints:
//! `cargo run --release -p stratbox-threshold --example bench_signer -- [N] [--seeded-primes]`.
//! With `--seeded-primes` the ceremony uses primes generated before it starts (so the DKG
//! figure is the protocol alone); without, the shares generate them during the ceremony.

use stratbox_threshold::bench::{BenchConfig, run};
use stratbox_threshold::local::Primes;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = BenchConfig::default();
    for arg in std::env::args().skip(1) {
        if arg == "--seeded-primes" {
            eprintln!("generating primes before the ceremony ...");
            config.primes = Some(
                tokio::task::spawn_blocking(|| {
                    [Primes::generate(), Primes::generate(), Primes::generate()]
                })
                .await?,
            );
        } else {
            config.transactions = arg.parse()?;
        }
    }
    let report = run(config).await?;
    print!("{report}");
    Ok(())
}
