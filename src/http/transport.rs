//! How a failed connection or transfer reads: the error with its causes on one line, and the one cause
//! that is not the server's: this process running out of file descriptors.

/// An error and its causes on one line (hyper's "connection refused" is three levels down).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// `EMFILE` and `ENFILE` (open(2); the same numbers on Linux and macOS): the process, or the system, has
/// no file descriptor left.
const OUT_OF_DESCRIPTORS: [i32; 2] = [24, 23];

/// Whether `e`'s chain holds EMFILE or ENFILE. Such a request is not retried (waiting frees nothing that
/// this process holds) and its message ends with [`DESCRIPTORS_HINT`].
pub fn out_of_descriptors(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source())
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|io| {
            io.raw_os_error()
                .is_some_and(|n| OUT_OF_DESCRIPTORS.contains(&n))
        })
}

/// What follows the message of an error that [`out_of_descriptors`] names: its help line, so the
/// caller's own (about the server) is left out (see `source::unless_helped`). Never retried, so no
/// attempts note follows it.
pub const DESCRIPTORS_HINT: &str =
    "\nhelp: this process ran out of file descriptors: lower `--jobs` (requests in flight) or raise the open-file limit (`ulimit -n`)";

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose cause is `source`, as reqwest wraps hyper's, which wraps the socket's.
    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn out_of_descriptors_is_found_down_the_chain_and_nothing_else_is() {
        assert!(out_of_descriptors(&Wrapped(
            std::io::Error::from_raw_os_error(24)
        )));
        assert!(out_of_descriptors(&Wrapped(
            std::io::Error::from_raw_os_error(23)
        )));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!out_of_descriptors(&Wrapped(refused)));
        let text = error_chain(&Wrapped(std::io::Error::from_raw_os_error(24)));
        assert!(text.starts_with("error sending request: "), "{text}");
    }
}
