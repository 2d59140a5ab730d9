//! [`LineCodec`]: lines of at most N bytes, ending in `\n` or `\r\n`.
//!
//! Unlike tokio-util's `LinesCodec` it does not fail the stream on a line that is
//! not UTF-8 (the protocols answer `ERR` and go on), and it reports a line that is
//! too long as soon as the buffer holds more than the limit without a newline,
//! so a client cannot make the gateway buffer more than the limit.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// One line from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line of text, without its line ending.
    Text(String),
    /// A line whose bytes are not UTF-8.
    NotUtf8,
}

/// Why reading lines stopped.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// A line longer than the limit; the connection must close (its tail is
    /// still coming and cannot be told from the next line).
    #[error("line too long")]
    TooLong,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into bounded lines.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_bytes: usize,
    /// How far the buffer has been searched for a newline already.
    searched: usize,
}

impl LineCodec {
    /// Lines of at most `max_bytes` (line ending excluded).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            searched: 0,
        }
    }

    fn line(bytes: &[u8]) -> Line {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        match std::str::from_utf8(bytes) {
            Ok(text) => Line::Text(text.to_owned()),
            Err(_) => Line::NotUtf8,
        }
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, LineError> {
        let newline = buf[self.searched..].iter().position(|&byte| byte == b'\n');
        let Some(offset) = newline else {
            // "\r" may still be followed by "\n": allow one byte of line ending.
            if buf.len() > self.max_bytes + 1 {
                return Err(LineError::TooLong);
            }
            self.searched = buf.len();
            return Ok(None);
        };
        let end = self.searched + offset;
        self.searched = 0;
        let content = buf[..end].strip_suffix(b"\r").map_or(end, <[u8]>::len);
        if content > self.max_bytes {
            return Err(LineError::TooLong);
        }
        let line = Self::line(&buf[..end]);
        buf.advance(end + 1);
        Ok(Some(line))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, LineError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        // A last line without its newline (the client closed after typing).
        let line = Self::line(buf);
        buf.clear();
        self.searched = 0;
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::{Line, LineCodec, LineError};
    use bytes::BytesMut;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder as _;

    fn decode_all(codec: &mut LineCodec, chunks: &[&[u8]]) -> Result<Vec<Line>, String> {
        let mut buf = BytesMut::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).map_err(|error| error.to_string())? {
                lines.push(line);
            }
        }
        while let Some(line) = codec
            .decode_eof(&mut buf)
            .map_err(|error| error.to_string())?
        {
            lines.push(line);
        }
        Ok(lines)
    }

    fn text(line: &str) -> Line {
        Line::Text(line.to_owned())
    }

    #[test]
    fn both_line_endings_and_a_last_line_without_one() {
        let mut codec = LineCodec::new(100);
        let lines = decode_all(&mut codec, &[b"UPPER a\r\nLOWER B\nREVERSE c"]).unwrap();
        assert_eq!(lines, [text("UPPER a"), text("LOWER B"), text("REVERSE c")]);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_reported_and_reading_goes_on() {
        let mut codec = LineCodec::new(100);
        let lines = decode_all(&mut codec, &[b"ok\n\xff\xfe\nfine\n"]).unwrap();
        assert_eq!(lines, [text("ok"), Line::NotUtf8, text("fine")]);
    }

    #[test]
    fn a_line_at_the_limit_passes_and_one_over_fails() {
        let mut codec = LineCodec::new(4);
        assert_eq!(
            decode_all(&mut codec, &[b"abcd\r\n"]).unwrap(),
            [text("abcd")]
        );
        let mut codec = LineCodec::new(4);
        assert_eq!(
            decode_all(&mut codec, &[b"abcde\n"]).unwrap_err(),
            "line too long"
        );
    }

    #[test]
    fn too_long_is_reported_before_the_newline_arrives() {
        let mut codec = LineCodec::new(8);
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert!(matches!(codec.decode(&mut buf), Err(LineError::TooLong)));
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_lines(
            lines in prop::collection::vec("[a-zA-Z0-9 ñé]{0,20}", 0..10),
            crlf in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let ending = if crlf { "\r\n" } else { "\n" };
            let stream: String = lines.iter().flat_map(|line| [line.as_str(), ending]).collect();
            let bytes = stream.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
            points.extend([0, bytes.len()]);
            points.sort_unstable();
            let chunks: Vec<&[u8]> = points.windows(2).map(|pair| &bytes[pair[0]..pair[1]]).collect();
            let decoded = decode_all(&mut LineCodec::new(64), &chunks).unwrap();
            let expected: Vec<Line> = lines.iter().map(|line| text(line)).collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn no_input_makes_the_buffer_exceed_the_limit_unnoticed(
            bytes in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut codec = LineCodec::new(16);
            let mut buf = BytesMut::new();
            for byte in bytes {
                buf.extend_from_slice(&[byte]);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
                // Whatever is buffered is at most one line's worth.
                prop_assert!(buf.len() <= 16 + 1);
            }
        }
    }
}
