//! Errors as the binaries print them: one line.

/// The error and its causes on one line, leaving out a cause whose text the
/// message before it already quotes (the libraries' errors embed their
/// source, so a plain walk of the chain would say everything twice).
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Debug)]
    struct Outer(io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "open /x: {}", self.0)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_embedded_cause_is_not_repeated() {
        let e = Outer(io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            one_line(&e),
            "open /x: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn a_cause_not_quoted_is_appended() {
        let e = io::Error::other("outer");
        assert_eq!(one_line(&e), "outer");
    }
}
