//! Wire protocol between `banger` and `bangerd`, and the domain vocabulary both
//! sides speak: VM names, lifecycle states and transitions, sizes.
//!
//! Nothing here does I/O; every type validates on construction so that a value
//! of the type is always a legal one.
#![forbid(unsafe_code)]

pub mod build_info;
pub mod model;
pub mod protocol;
pub mod text;

/// An error and its causes as one line, `outer: cause: root cause`, printing
/// each message once even when a wrapper already repeats its source's text.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the store")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_prints_each_cause_once() {
        let err = Outer(std::io::Error::other("disk full"));
        assert_eq!(super::error_chain(&err), "cannot open the store: disk full");
        let plain = std::io::Error::other("x");
        assert_eq!(super::error_chain(&plain), "x");
    }
}
