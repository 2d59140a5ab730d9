//! The chat service's own flags, with environment fallbacks: [`ChatOptions`],
//! which backplane ([`BackplaneOptions`]) and how rooms behave
//! ([`ChatConfig`]). The clap defaults and the [`Default`] impl are kept
//! equal by a test.

use clap::Args;

use crate::hub::HubLimits;

/// Everything the chat service is built from.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct ChatOptions {
    /// In-process rooms, or NATS.
    #[command(flatten)]
    pub backplane: BackplaneOptions,
    /// How rooms behave.
    #[command(flatten)]
    pub config: ChatConfig,
}

/// Which backplane to run: NATS when `--nats-url` is given, else in-process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct BackplaneOptions {
    /// NATS server (with JetStream) shared by every replica, e.g.
    /// nats://127.0.0.1:4222. Without it rooms live in this process only.
    #[arg(long, env = "QUARTET_NATS_URL")]
    pub nats_url: Option<String>,

    /// Prefix of every NATS subject, stream and bucket this service uses, so
    /// several deployments (or test runs) can share one NATS.
    #[arg(long, env = "QUARTET_NATS_PREFIX", default_value = "quartet")]
    pub nats_prefix: String,
}

/// How rooms behave: history, limits, and how far a member may fall behind.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ChatConfig {
    /// Lines a joiner receives from the room's recent history when its Join
    /// carries no `since_seq`.
    #[arg(long, env = "QUARTET_CHAT_HISTORY", default_value_t = 50)]
    pub history: usize,

    /// Lines each room retains for `since_seq` replay and GetHistory (at least
    /// `--history`). Older lines are dropped and reported as a Gap.
    #[arg(long, env = "QUARTET_CHAT_RETAIN", default_value_t = 1000)]
    pub retain: usize,

    /// Largest line a member may say, in bytes of UTF-8; longer ones get an
    /// INVALID_MESSAGE Notice.
    #[arg(long, env = "QUARTET_CHAT_MAX_TEXT_BYTES", default_value_t = 4096)]
    pub max_text_bytes: usize,

    /// Lines per second a member may say, sustained; faster ones get a
    /// RATE_LIMITED Notice.
    #[arg(long, env = "QUARTET_CHAT_RATE", default_value_t = 5.0)]
    pub rate_per_second: f64,

    /// Lines a member may say at once before `--rate-per-second` applies.
    #[arg(long, env = "QUARTET_CHAT_BURST", default_value_t = 20)]
    pub rate_burst: u32,

    /// Events a member may fall behind the room before it skips ahead with a
    /// Gap: the bound of each member's outbound queue.
    #[arg(long, env = "QUARTET_CHAT_MEMBER_QUEUE", default_value_t = 1024)]
    pub member_queue: usize,

    /// Rooms this server holds at once. At the limit the longest-idle room
    /// without members is forgotten (in-process backplane); when every room
    /// has members, a new room is RESOURCE_EXHAUSTED. Bounds memory: rooms x
    /// retain x max-text-bytes.
    #[arg(long, env = "QUARTET_CHAT_MAX_ROOMS", default_value_t = 1000)]
    pub max_rooms: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            history: 50,
            retain: 1000,
            max_text_bytes: 4096,
            rate_per_second: 5.0,
            rate_burst: 20,
            member_queue: 1024,
            max_rooms: 1000,
        }
    }
}

impl ChatConfig {
    /// Lines retained per room: never fewer than a joiner is promised.
    pub fn retained(&self) -> usize {
        self.retain.max(self.history).max(1)
    }

    /// The hub sizes this configuration asks for.
    pub fn hub_limits(&self) -> HubLimits {
        HubLimits {
            history: self.history,
            retain: self.retained(),
            member_queue: self.member_queue.max(1),
            max_rooms: self.max_rooms.max(1),
            evict_idle_rooms: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use quartet_runtime::config::parse_options;

    use super::ChatConfig;

    #[test]
    fn clap_defaults_equal_default_impl() {
        assert_eq!(
            parse_options::<ChatConfig>([]).unwrap(),
            ChatConfig::default()
        );
    }
}
