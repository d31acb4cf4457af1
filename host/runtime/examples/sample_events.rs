//! Writes the sample backtest file to stdout:
//! `cargo run --release -p stratbox-host --example sample_events > host/testdata/random-walk.jsonl`
//! The unit test `sample_file_is_the_generator_output` keeps the checked-in file equal to
//! this output.

fn main() {
    print!(
        "{}",
        stratbox_host::replay::to_jsonl(&stratbox_host::replay::random_walk(7, 200))
    );
}
