//! Chat over TCP: the connection's lines in, the session's lines out.

use std::time::Duration;

use futures_util::StreamExt as _;
use quartet_runtime::DrainSignal;
use tokio::{
    io::{AsyncWriteExt as _, BufWriter},
    net::{TcpStream, tcp::OwnedWriteHalf},
    time::timeout,
};
use tokio_util::codec::FramedRead;

use super::session::{self, Input, LineSink};
use crate::{
    codec::{Line, LineCodec, LineError},
    connection::{READ_BUFFER, WRITE_BUFFER},
    upstreams::Upstreams,
};

/// Writes each line at once (chat is interactive), giving up on a client that
/// takes nothing for the idle timeout.
struct TcpSink {
    out: BufWriter<OwnedWriteHalf>,
    patience: Duration,
}

impl LineSink for TcpSink {
    async fn send(&mut self, line: &str) -> std::io::Result<()> {
        let write = async {
            self.out.write_all(line.as_bytes()).await?;
            self.out.write_all(b"\n").await?;
            self.out.flush().await
        };
        timeout(self.patience, write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

/// Serves one TCP chat connection.
pub async fn serve_connection(
    stream: TcpStream,
    upstreams: Upstreams,
    max_line_bytes: usize,
    idle: Duration,
    drain: DrainSignal,
) {
    let (read, write) = stream.into_split();
    let input = FramedRead::with_capacity(read, LineCodec::new(max_line_bytes), READ_BUFFER)
        .map(|line| match line {
            Ok(Line::Text(text)) => Some(Input::Line(text)),
            Ok(Line::NotUtf8) => Some(Input::NotUtf8),
            Err(LineError::TooLong) => Some(Input::TooLong),
            Err(LineError::Io(_)) => None,
        })
        .take_while(|input| std::future::ready(input.is_some()))
        .filter_map(std::future::ready);
    let sink = TcpSink {
        out: BufWriter::with_capacity(WRITE_BUFFER, write),
        patience: idle,
    };
    session::run(upstreams, Box::pin(input), sink, idle, drain).await;
}
