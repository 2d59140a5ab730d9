//! One module per request/answer text protocol: parse a line into a command,
//! call the service, format the answer. The exact grammar is docs/protocol.md.

pub mod database;
pub mod transform;
pub mod weather;

use crate::{lines::Reply, upstreams::err};

/// The answer to `HELP`: the protocol's commands, one per line, after `OK <n>`.
fn help(commands: &[&str]) -> Reply {
    let mut lines = vec![format!("OK {}", commands.len())];
    lines.extend(commands.iter().map(|command| (*command).to_owned()));
    Reply::Lines(lines)
}

/// The answer to `QUIT`.
fn quit() -> Reply {
    Reply::Close(vec!["OK bye".into()])
}

/// The answer to an unknown verb.
fn unknown(verb: &str) -> Reply {
    Reply::line(err(
        "INVALID_ARGUMENT",
        &format!("unknown command {verb:?}; HELP lists the commands"),
    ))
}

/// The answer to a command used wrongly.
fn usage(usage: &str) -> Reply {
    Reply::line(err("INVALID_ARGUMENT", &format!("usage: {usage}")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt as _;
    use proptest::prelude::*;

    use super::{database::DatabaseLines, transform::TransformLines, weather::WeatherLines};
    use crate::{
        lines::{LineProtocol, Reply},
        options::UpstreamOptions,
        upstreams::Upstreams,
    };

    fn protocols() -> Vec<Box<dyn LineProtocol>> {
        // Nothing listens there; no test here waits for an upstream answer.
        let options = UpstreamOptions {
            transform_addr: "http://127.0.0.1:9".into(),
            database_addr: "http://127.0.0.1:9".into(),
            weather_addr: "http://127.0.0.1:9".into(),
            chat_addr: "http://127.0.0.1:9".into(),
            ..UpstreamOptions::default()
        };
        let upstreams = Upstreams::new(&options, Duration::from_millis(10)).unwrap();
        vec![
            Box::new(TransformLines::new(upstreams.clone())),
            Box::new(DatabaseLines::new(upstreams.clone())),
            Box::new(WeatherLines::new(upstreams, "madrid".into())),
        ]
    }

    proptest! {
        #[test]
        fn any_line_gets_a_well_formed_answer_or_an_upstream_call(line in "\\PC{0,80}|[A-Za-z_]{1,12}( .{0,40})?") {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _inside = runtime.enter();
            for protocol in protocols() {
                // Parse errors, HELP and QUIT answer at once; everything else is
                // an upstream call, not polled here.
                let verb = line.split(' ').next().unwrap_or_default().to_ascii_uppercase();
                let local = matches!(verb.as_str(), "HELP" | "QUIT") || !line.is_ascii();
                let answer = protocol.handle(line.clone());
                if local && let Some(reply) = answer.now_or_never() {
                    let lines = match reply {
                        Reply::Lines(lines) | Reply::Close(lines) => lines,
                    };
                    prop_assert!(!lines.is_empty());
                    prop_assert!(lines[0].starts_with("OK") || lines[0].starts_with("ERR "), "{:?}", lines);
                    prop_assert!(lines.iter().all(|line| !line.contains('\n')));
                }
            }
        }
    }
}
