//! What the benchmarks share: how many rounds (`BENCH_ROUNDS`), the median,
//! and the entry point that skips with a reason or reports a failure.

use std::process::ExitCode;

pub type Fallible<T> = Result<T, String>;

/// `BENCH_ROUNDS`, or `default` when unset.
pub fn rounds(default: usize) -> Fallible<usize> {
    match std::env::var("BENCH_ROUNDS") {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("BENCH_ROUNDS={v:?}: expected a positive integer")),
        },
    }
}

/// The median; NaN for no values.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Runs benchmark `name`: skipped (exit 0) with the reason `skip` gives,
/// else `run`, whose error fails it.
pub fn main(name: &str, skip: Option<String>, run: impl FnOnce() -> Fallible<()>) -> ExitCode {
    if let Some(why) = skip {
        println!("{name} benchmark skipped: {why}");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
