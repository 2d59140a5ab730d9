//! Which services there are, the flags they are built from, and a service
//! built from them: each through its own crate's `handler` and `server`.

use std::path::PathBuf;

use clap::Args;
use quartet_chat::{AnyBackplane, BackplaneOptions, ChatConfig, ChatHandler, ChatOptions};
use quartet_database::{PeopleHandler, StoreOptions};
use quartet_runtime::{GrpcServer, ServerOptions, Shutdown};
use quartet_transform::{TransformHandler, TransformOptions};
use quartet_weather::{WeatherHandler, WeatherOptions};

use crate::error::SuiteError;

/// One of the four gRPC services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Upper, lower, reverse.
    Transform,
    /// The people database.
    Database,
    /// Weather stations and their readings.
    Weather,
    /// Chat rooms.
    Chat,
}

impl Service {
    /// Every service, in port order.
    pub const ALL: [Self; 4] = [Self::Transform, Self::Database, Self::Weather, Self::Chat];

    /// The name its server announces and reports health under.
    pub fn name(self) -> &'static str {
        match self {
            Self::Transform => "transform",
            Self::Database => "database",
            Self::Weather => "weather",
            Self::Chat => "chat",
        }
    }
}

/// The four services' own flags, as `quartet serve` takes them.
#[derive(Debug, Clone, Args)]
pub struct ServiceOptions {
    /// The transform service's (none today).
    #[command(flatten)]
    pub transform: TransformOptions,

    /// Where the people live.
    #[command(flatten)]
    pub store: StoreOptions,

    /// The weather service's provider and limits.
    #[command(flatten)]
    pub weather: WeatherOptions,

    /// Chat's backplane: in-process, or NATS with --nats-url.
    #[command(flatten)]
    pub chat_backplane: BackplaneOptions,

    /// How chat rooms behave: the defaults here, so `quartet serve` keeps its
    /// flags few; the chat binary takes them all.
    #[arg(skip)]
    pub chat: ChatConfig,
}

impl ServiceOptions {
    /// The defaults, with the people in an embedded store under `data_dir`:
    /// what tests start.
    pub fn embedded(data_dir: PathBuf) -> Self {
        Self {
            transform: TransformOptions::default(),
            store: StoreOptions {
                data_dir,
                database_url: None,
                database_url_file: None,
                change_retention: 100_000,
            },
            weather: WeatherOptions::default(),
            chat_backplane: BackplaneOptions::default(),
            chat: ChatConfig::default(),
        }
    }

    /// Chat's options, as the chat binary would parse them.
    pub fn chat_options(&self) -> ChatOptions {
        ChatOptions {
            backplane: self.chat_backplane.clone(),
            config: self.chat.clone(),
        }
    }
}

/// A service built from its options, ready to be hosted.
#[derive(Debug)]
pub enum Handler {
    /// The transform service.
    Transform(TransformHandler),
    /// The people database over its store.
    Database(PeopleHandler),
    /// The weather service over its provider.
    Weather(WeatherHandler),
    /// The chat service over the backplane its options chose.
    Chat(ChatHandler<AnyBackplane>),
}

impl Handler {
    /// Builds `service` from `options`: opens the store, loads observations,
    /// connects to NATS, as the service's own binary does.
    pub async fn open(service: Service, options: &ServiceOptions) -> Result<Self, SuiteError> {
        Ok(match service {
            Service::Transform => {
                Self::Transform(quartet_transform::handler(&options.transform).await?)
            }
            Service::Database => Self::Database(quartet_database::handler(&options.store).await?),
            Service::Weather => Self::Weather(quartet_weather::handler(&options.weather).await?),
            Service::Chat => Self::Chat(quartet_chat::handler(&options.chat_options()).await?),
        })
    }

    /// Which service it is.
    pub fn service(&self) -> Service {
        match self {
            Self::Transform(_) => Service::Transform,
            Self::Database(_) => Service::Database,
            Self::Weather(_) => Service::Weather,
            Self::Chat(_) => Service::Chat,
        }
    }

    /// A server hosting it, as its own binary would.
    pub fn server(self, options: ServerOptions, shutdown: Shutdown) -> GrpcServer {
        match self {
            Self::Transform(handler) => quartet_transform::server(options, shutdown, handler),
            Self::Database(handler) => quartet_database::server(options, shutdown, handler),
            Self::Weather(handler) => quartet_weather::server(options, shutdown, handler),
            Self::Chat(handler) => quartet_chat::server(options, shutdown, handler),
        }
    }
}
