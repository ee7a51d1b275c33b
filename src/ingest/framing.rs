//! RFC 6587 framing of a syslog TCP stream: octet counting (`LEN SP MSG`) and
//! LF-terminated messages, told apart per frame as rsyslog does: a frame that
//! starts with digits and a space is counted.

/// Splits a byte stream into messages, keeping at most `max` bytes of each.
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of an over-long frame still to be thrown away (octet counting).
    skip: usize,
    /// An over-long LF frame is being thrown away up to its LF.
    skip_line: bool,
    /// Bytes of the partial frame at the front of `buf` already searched for
    /// an LF: byte-at-a-time input is scanned once, not once per byte.
    searched: usize,
    /// Bytes looked at for an LF, over the framer's life (for the linearity test).
    scanned: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// The frame was longer than the limit and was cut.
    pub oversized: bool,
}

impl Framer {
    pub fn new(max: usize) -> Self {
        Framer {
            buf: Vec::new(),
            max,
            skip: 0,
            skip_line: false,
            searched: 0,
            scanned: 0,
        }
    }

    /// Adds bytes read from the stream and returns the frames they complete.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Frame>) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            if self.skip_line {
                match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.skip_line = false;
                        data = &data[i + 1..];
                    }
                    None => return,
                }
                continue;
            }
            self.buf.extend_from_slice(data);
            data = &[];
            self.drain(out);
        }
    }

    fn drain(&mut self, out: &mut Vec<Frame>) {
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            // Separators between frames (LF, CR, NUL) carry nothing.
            let lead = rest
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r' | 0))
                .count();
            at += lead;
            let rest = &self.buf[at..];
            if rest.is_empty() {
                break;
            }
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 && digits <= 9 && rest.get(digits) == Some(&b' ') {
                let len: usize = std::str::from_utf8(&rest[..digits])
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                let body = &rest[digits + 1..];
                if len > self.max {
                    let keep = body.len().min(len).min(self.max);
                    if body.len() >= self.max || body.len() >= len {
                        out.push(Frame {
                            bytes: body[..keep].to_vec(),
                            oversized: true,
                        });
                        let have = body.len().min(len);
                        self.skip = len - have;
                        at += digits + 1 + have;
                        continue;
                    }
                    break;
                }
                if body.len() < len {
                    break;
                }
                out.push(Frame {
                    bytes: body[..len].to_vec(),
                    oversized: false,
                });
                at += digits + 1 + len;
                continue;
            }
            let from = if at == 0 {
                self.searched.min(rest.len())
            } else {
                0
            };
            let lf = rest[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| i + from);
            self.scanned += lf.map_or(rest.len(), |i| i + 1) - from;
            match lf {
                Some(i) if i <= self.max => {
                    let line = &rest[..i];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    out.push(Frame {
                        bytes: line.to_vec(),
                        oversized: false,
                    });
                    at += i + 1;
                }
                _ if rest.len() > self.max => {
                    out.push(Frame {
                        bytes: rest[..self.max].to_vec(),
                        oversized: true,
                    });
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => at += i + 1,
                        None => {
                            at = self.buf.len();
                            self.skip_line = true;
                        }
                    }
                }
                _ => {
                    // Incomplete: next time, search only what arrives.
                    let start = self.buf.len() - rest.len();
                    self.buf.drain(..start);
                    self.searched = self.buf.len();
                    return;
                }
            }
        }
        self.searched = 0;
        self.buf.drain(..at);
    }

    /// The stream ended: an unterminated last line is still a message.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        let rest = std::mem::take(&mut self.buf);
        let line = rest.strip_suffix(b"\r").unwrap_or(&rest);
        if !line.is_empty() && !self.skip_line && self.skip == 0 {
            out.push(Frame {
                bytes: line.to_vec(),
                oversized: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_at_a_time_input_is_scanned_once() {
        let mut f = Framer::new(64 * 1024);
        let mut out = Vec::new();
        for _ in 0..50_000 {
            f.push(b"x", &mut out);
        }
        f.push(b"\n", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes.len(), 50_000);
        assert!(f.scanned <= 2 * 50_001, "scanned {} bytes", f.scanned);
    }

    use super::*;
    use proptest::prelude::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        out.into_iter()
            .map(|fr| (String::from_utf8(fr.bytes).unwrap(), fr.oversized))
            .collect()
    }

    #[test]
    fn both_framings_and_mixed() {
        let got = frames(
            100,
            &[b"<13>a b\n5 <1>xy", b"\n<2>last\r\n3 abc10.0.0.1:1 [x]\n"],
        );
        assert_eq!(
            got,
            vec![
                ("<13>a b".into(), false),
                ("<1>xy".into(), false),
                ("<2>last".into(), false),
                ("abc".into(), false),
                ("10.0.0.1:1 [x]".into(), false),
            ]
        );
        assert_eq!(
            frames(100, &[b"<1>no newline"]),
            vec![("<1>no newline".into(), false)]
        );
    }

    #[test]
    fn over_long_frames_are_cut_and_the_stream_resyncs() {
        let got = frames(5, &[b"10 0123456789<1>ok\n"]);
        assert_eq!(got, vec![("01234".into(), true), ("<1>ok".into(), false)]);
        let got = frames(5, &[b"<1>too long", b" still\n<2>y\n"]);
        assert_eq!(got, vec![("<1>to".into(), true), ("<2>y".into(), false)]);
        let got = frames(5, &[b"12 0123", b"456789ab<1>\n"]);
        assert_eq!(got, vec![("01234".into(), true), ("<1>".into(), false)]);
        // The rest of a counted frame may arrive in later reads.
        let got = frames(5, &[b"20 0123456", b"789012345", b"6789<2>z\n"]);
        assert_eq!(got, vec![("01234".into(), true), ("<2>z".into(), false)]);
    }

    proptest! {
        #[test]
        fn split_points_do_not_matter(msgs in proptest::collection::vec("[<>a-z0-9 :\\[\\]]{1,40}", 1..20),
                                      counted in proptest::collection::vec(any::<bool>(), 20),
                                      cut in 1usize..50) {
            let mut stream = Vec::new();
            for (m, c) in msgs.iter().zip(&counted) {
                // LF framing cannot carry a message that itself starts with "digits SP".
                if *c || m.starts_with(|ch: char| ch.is_ascii_digit()) {
                    stream.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                } else {
                    stream.extend_from_slice(format!("{m}\n").as_bytes());
                }
            }
            let chunks: Vec<&[u8]> = stream.chunks(cut).collect();
            let got: Vec<String> = frames(1000, &chunks).into_iter().map(|(s, _)| s).collect();
            let want: Vec<String> = msgs.iter().filter(|m| !m.trim_start_matches(['\n', '\r']).is_empty()).cloned().collect();
            prop_assert_eq!(got, want);
        }
    }
}
