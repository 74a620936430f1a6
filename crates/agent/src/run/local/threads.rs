//! The local model's math threads.
//!
//! candle reads its thread count from `RAYON_NUM_THREADS` on every parallel operation,
//! and where it is unset works the count out again from `/proc/cpuinfo` each time: a
//! quarter of the local model's time per token. A process that runs the local model sets
//! it once, at start, by executing itself again with it set (`std::env::set_var` is not
//! safe once threads run; `exec` keeps the process id, so supervisors see one process).

use std::os::unix::process::CommandExt;

/// Executes this program again with `RAYON_NUM_THREADS` set to the cores it may use
/// (cgroup quotas included), unless it is set. Returns only if it is set, or if the exec
/// failed (then the model is slower, and says so).
pub fn settle_math_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .env("RAYON_NUM_THREADS", cores.to_string())
        .exec();
    eprintln!(
        "could not set RAYON_NUM_THREADS by executing again ({error}); the local model runs slower"
    );
}
