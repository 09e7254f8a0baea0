//! Fault points for crash tests: debug builds only. `STACK_TEST_PAUSE_AT` names a point (`before-commit`)
//! or the Nth point reached (`17`); on reaching it the process writes the point's name to
//! `STACK_TEST_PAUSE_FILE` and waits until that file is deleted, so a test can kill it (kill -9) or let it
//! go on at an exact step. Release builds compile [`point`] to nothing.

/// Marks a step where a crash test may stop the process.
#[cfg(debug_assertions)]
pub fn point(name: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static REACHED: AtomicUsize = AtomicUsize::new(0);
    let n = REACHED.fetch_add(1, Ordering::SeqCst) + 1;
    let (Some(at), Some(file)) = (
        std::env::var_os("STACK_TEST_PAUSE_AT"),
        std::env::var_os("STACK_TEST_PAUSE_FILE"),
    ) else {
        return;
    };
    let at = at.to_string_lossy();
    if at != name && at != n.to_string() {
        return;
    }
    let file = std::path::PathBuf::from(file);
    // Written whole, then renamed into place: the test reads it as soon as it appears.
    let mut tmp = file.clone().into_os_string();
    tmp.push(".tmp");
    if fs_err::write(&tmp, format!("{n} {name}\n")).is_err() || fs_err::rename(&tmp, &file).is_err()
    {
        return;
    }
    while file.exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Marks a step where a crash test may stop the process (nothing in release builds).
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) {}
