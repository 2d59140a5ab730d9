//! The bounds of a WebSocket, the same as the text ports': what one frame
//! from a browser may be, and the close (code and reason) that answers a frame
//! that breaks them.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, close_code};
use tokio_tungstenite::tungstenite;

/// One WebSocket's bounds.
#[derive(Debug, Clone, Copy)]
pub struct WebLimits {
    /// Longest line (text frame) a client may send, in bytes.
    pub max_line_bytes: usize,
    /// A socket with nothing to do for this long is closed; a browser that
    /// takes nothing for this long is closed too.
    pub idle: Duration,
    /// Pings go out this often; no pong by the next one closes the socket.
    pub ping_interval: Duration,
}

impl WebLimits {
    /// The largest message the WebSocket layer buffers: a little over a line,
    /// so a line just over the limit is read and answered `ERR line too long`
    /// like on TCP, and anything bigger is refused from its frame header on.
    pub fn max_message_bytes(self) -> usize {
        self.max_line_bytes + 1024
    }
}

/// What one frame from the client means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One line of text.
    Line(String),
    /// A line over the limit: answered, then closed with 1009.
    TooLong,
    /// A frame the protocol does not take: close with this code and reason.
    Refused(u16, &'static str),
    /// The answer to our ping: the browser is there.
    Pong,
    /// Nothing to do (a ping: the WebSocket layer answers it).
    Nothing,
    /// The client closed.
    Closed,
}

/// Reason of a 1009 close.
pub const TOO_LONG: &str = "line too long";

/// Reads one frame under `limits`.
pub fn frame(message: Message, limits: WebLimits) -> Frame {
    match message {
        Message::Text(text) if text.len() > limits.max_line_bytes => Frame::TooLong,
        Message::Text(text) if text.as_str().contains(['\n', '\r']) => Frame::Refused(
            close_code::INVALID,
            "one line per frame: a frame may not hold a line break",
        ),
        Message::Text(text) => Frame::Line(text.as_str().to_owned()),
        Message::Binary(_) => Frame::Refused(
            close_code::UNSUPPORTED,
            "binary frames are not supported: send text",
        ),
        Message::Pong(_) => Frame::Pong,
        Message::Ping(_) => Frame::Nothing,
        Message::Close(_) => Frame::Closed,
    }
}

/// The frame a read error stands for: a message over the WebSocket layer's
/// bound is a line too long, invalid UTF-8 in a text frame is refused with
/// 1007; anything else means the connection is gone.
pub fn read_error(error: axum::Error) -> Frame {
    match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(error) => match *error {
            tungstenite::Error::Capacity(_) => Frame::TooLong,
            tungstenite::Error::Utf8(_) => {
                Frame::Refused(close_code::INVALID, "a text frame must be valid UTF-8")
            }
            _ => Frame::Closed,
        },
        Err(_) => Frame::Closed,
    }
}

/// The close frame of `code` and `reason`.
pub fn close(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::extract::ws::{Message, close_code};

    use super::{Frame, WebLimits, frame};

    const LIMITS: WebLimits = WebLimits {
        max_line_bytes: 8,
        idle: Duration::from_secs(1),
        ping_interval: Duration::from_secs(1),
    };

    #[test]
    fn a_text_frame_is_one_bounded_line() {
        assert_eq!(
            frame(Message::Text("12345678".into()), LIMITS),
            Frame::Line("12345678".into())
        );
        assert_eq!(
            frame(Message::Text("123456789".into()), LIMITS),
            Frame::TooLong
        );
        assert!(matches!(
            frame(Message::Text("a\nb".into()), LIMITS),
            Frame::Refused(close_code::INVALID, _)
        ));
        assert!(matches!(
            frame(Message::Text("a\r".into()), LIMITS),
            Frame::Refused(close_code::INVALID, _)
        ));
    }

    #[test]
    fn binary_frames_are_refused_as_unsupported() {
        assert!(matches!(
            frame(Message::Binary(vec![1, 2].into()), LIMITS),
            Frame::Refused(close_code::UNSUPPORTED, _)
        ));
    }
}
