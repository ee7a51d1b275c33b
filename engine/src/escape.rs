//! Text from the network shown to people: control characters (ESC, CR, LF,
//! C1, DEL) are written as escapes, so a server name cannot clear a screen,
//! set a terminal title or forge a log line.

use std::borrow::Cow;

/// `s` with every control character escaped (`\x1b`, `\n`, `\r`, `\t`, `\u{85}`).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("be_api/api1"), "be_api/api1");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\x1b]0;pwned\x07b\r\nc\u{85}é"),
            "a\\x1b]0;pwned\\x07b\\r\\nc\\u{85}é"
        );
    }
}
