//! The transform protocol: `UPPER <text>`, `LOWER <text>`, `REVERSE <text>`,
//! each answered with the transformed text on one line.

use quartet_proto::transform::v1::{Operation, TransformRequest};

use super::{help, quit, unknown};
use crate::{
    lines::{LineProtocol, PendingReply, Reply, split_command},
    upstreams::{Upstreams, error_line},
};

const COMMANDS: [&str; 5] = [
    "UPPER <text>",
    "LOWER <text>",
    "REVERSE <text>",
    "HELP",
    "QUIT",
];

/// Bridges the transform protocol to the transform service.
#[derive(Debug, Clone)]
pub struct TransformLines {
    upstreams: Upstreams,
}

impl TransformLines {
    /// A protocol handler calling `upstreams`.
    pub fn new(upstreams: Upstreams) -> Self {
        Self { upstreams }
    }
}

impl LineProtocol for TransformLines {
    fn handle(&self, line: String) -> PendingReply {
        let (verb, text) = split_command(&line);
        let operation = match verb.as_str() {
            "UPPER" => Operation::Upper,
            "LOWER" => Operation::Lower,
            "REVERSE" => Operation::Reverse,
            "HELP" => return Box::pin(std::future::ready(help(&COMMANDS))),
            "QUIT" => return Box::pin(std::future::ready(quit())),
            _ => return Box::pin(std::future::ready(unknown(&verb))),
        };
        let request = self.upstreams.request(TransformRequest {
            operation: operation.into(),
            text: text.to_owned(),
        });
        let mut client = self.upstreams.transform.clone();
        Box::pin(async move {
            match client.transform(request).await {
                Ok(answer) => Reply::line(answer.into_inner().text),
                Err(status) => Reply::line(error_line(&status)),
            }
        })
    }
}
