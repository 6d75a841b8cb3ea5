//! The `fsb24` binary: command line, config loading, telemetry, then [`fsb24::app::run`].

fn main() {}
