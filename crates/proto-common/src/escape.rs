//! Escaping client-supplied text before it reaches a log line.
//!
//! A log is read by people and parsed by tools: a CR, LF or NUL from the
//! network could forge a log line or hide the rest of one. Log fields that
//! carry client text go through [`LogSafe`], which writes control
//! characters (and the backslash that introduces an escape) as Rust
//! escapes, so every log record stays one line and shows what was sent.

use std::fmt;

/// Displays `text` with control characters escaped (`\r`, `\u{0}`, ...).
pub struct LogSafe<'a>(pub &'a str);

/// Shorthand: `tracing::info!(helo = %log_safe(&name))`.
pub fn log_safe(text: &str) -> LogSafe<'_> {
    LogSafe(text)
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::log_safe;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(
            log_safe("evil.test\rX-Injected: yes\n\0").to_string(),
            "evil.test\\rX-Injected: yes\\n\\u{0}"
        );
        assert_eq!(log_safe("a\\b").to_string(), "a\\\\b");
        assert_eq!(log_safe("bücher.test").to_string(), "bücher.test");
        assert_eq!(log_safe("\u{85}").to_string(), "\\u{85}");
    }
}
