//! A tiny forward-only cursor over a `&str`, used by the hot traffic-line path.
//!
//! HAProxy lines have a fixed field order and ASCII delimiters, so scanning bytes
//! and slicing at delimiter positions is both faster than combinators and always
//! lands on UTF-8 boundaries.

#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.s.len());
    }

    /// Consumes `lit` if the input continues with it.
    pub(crate) fn lit(&mut self, lit: &str) -> bool {
        if self.rest().as_bytes().starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    /// Returns the text up to the next `delim` (short fields: a plain loop beats
    /// memchr's setup cost) and consumes the delimiter. `None` if it is absent.
    pub(crate) fn until(&mut self, delim: u8) -> Option<&'a str> {
        let bytes = &self.s.as_bytes()[self.pos..];
        let n = bytes.iter().position(|&b| b == delim)?;
        let out = &self.s[self.pos..self.pos + n];
        self.pos += n + 1;
        Some(out)
    }

    /// Like `until`, for fields that may be long (URIs, captures).
    pub(crate) fn until_long(&mut self, delim: u8) -> Option<&'a str> {
        let n = memchr::memchr(delim, &self.s.as_bytes()[self.pos..])?;
        let out = &self.s[self.pos..self.pos + n];
        self.pos += n + 1;
        Some(out)
    }

    pub(crate) fn take_rest(&mut self) -> &'a str {
        let out = self.rest();
        self.pos = self.s.len();
        out
    }

    /// Reads `a/b/c…`, signed decimal integers separated by `/`, up to the next
    /// space (consumed) or the end, in one pass. Returns how many were read and
    /// a bit mask of those written with a `+` (logasap, redispatch).
    pub(crate) fn int_list(&mut self, out: &mut [i64]) -> Option<(usize, u32)> {
        let b = self.s.as_bytes();
        let mut i = self.pos;
        let mut n = 0;
        let mut plus = 0u32;
        loop {
            if n == out.len() {
                return None;
            }
            let mut neg = false;
            match b.get(i) {
                Some(b'-') => {
                    neg = true;
                    i += 1;
                }
                Some(b'+') => {
                    plus |= 1 << n;
                    i += 1;
                }
                _ => {}
            }
            let start = i;
            let mut v: i64 = 0;
            while let Some(&d) = b.get(i) {
                let d = d.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                v = v.checked_mul(10)?.checked_add(i64::from(d))?;
                i += 1;
            }
            if i == start {
                return None;
            }
            out[n] = if neg { -v } else { v };
            n += 1;
            match b.get(i) {
                Some(b'/') => i += 1,
                Some(b' ') => {
                    self.pos = i + 1;
                    return Some((n, plus));
                }
                None => {
                    self.pos = i;
                    return Some((n, plus));
                }
                _ => return None,
            }
        }
    }
}

/// Parses a decimal integer with an optional `+` or `-` sign. The `+` is
/// HAProxy's logasap / redispatch marker; callers that care check for it first.
pub(crate) fn int(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    Some(if neg { -v } else { v })
}

pub(crate) fn uint(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in b {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

pub(crate) fn u32_(s: &str) -> Option<u32> {
    uint(s).and_then(|v| u32::try_from(v).ok())
}

/// Splits `ip:port` on the last colon: IPv6 client addresses are not bracketed.
/// `unix:3` becomes (`unix`, 3); a value without a colon has no port.
pub(crate) fn split_addr(s: &str) -> (&str, Option<u32>) {
    match memchr::memrchr(b':', s.as_bytes()) {
        Some(i) => match u32_(&s[i + 1..]) {
            Some(p) => (&s[..i], Some(p)),
            None => (s, None),
        },
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_with_signs() {
        assert_eq!(int("-1"), Some(-1));
        assert_eq!(int("+3"), Some(3));
        assert_eq!(int("42"), Some(42));
        assert_eq!(int(""), None);
        assert_eq!(int("+"), None);
        assert_eq!(int("4x"), None);
        assert_eq!(uint("18446744073709551615"), Some(u64::MAX));
        assert_eq!(uint("18446744073709551616"), None);
    }

    #[test]
    fn addresses_split_on_last_colon() {
        assert_eq!(split_addr("127.0.0.1:80"), ("127.0.0.1", Some(80)));
        assert_eq!(split_addr("::1:53580"), ("::1", Some(53580)));
        assert_eq!(
            split_addr("::ffff:127.0.0.1:60770"),
            ("::ffff:127.0.0.1", Some(60770))
        );
        assert_eq!(split_addr("unix:3"), ("unix", Some(3)));
        assert_eq!(split_addr("unknown"), ("unknown", None));
    }

    #[test]
    fn int_lists() {
        let mut out = [0i64; 5];
        let mut c = Cursor::new("0/-1/+3/4/+5 rest");
        assert_eq!(c.int_list(&mut out), Some((5, 0b10100)));
        assert_eq!(out, [0, -1, 3, 4, 5]);
        assert_eq!(c.rest(), "rest");
        assert_eq!(Cursor::new("1/2/3/4/5/6").int_list(&mut out), None);
        assert_eq!(Cursor::new("1//2").int_list(&mut out), None);
        assert_eq!(Cursor::new("1/x").int_list(&mut out), None);
        let mut c = Cursor::new("7/8");
        assert_eq!(c.int_list(&mut out), Some((2, 0)));
        assert!(c.is_empty());
    }

    #[test]
    fn cursor_until() {
        let mut c = Cursor::new("a bb ccc");
        assert_eq!(c.until(b' '), Some("a"));
        assert_eq!(c.until_long(b' '), Some("bb"));
        assert_eq!(c.until(b' '), None);
        assert_eq!(c.take_rest(), "ccc");
        assert!(c.is_empty());
    }
}
