//! [`Suite`]: servers bound side by side, the gateway in front if asked, and
//! [`RunningSuite`]: them serving, until every one has stopped.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

use quartet_gateway::{BoundGateway, Gateway, GatewayOptions, RunningGateway, UpstreamOptions};
use quartet_runtime::{BoundServer, Metrics, RunningServer, ServerOptions, Shutdown};
use tokio::task::JoinSet;

use crate::{
    error::SuiteError,
    service::{Handler, Service, ServiceOptions},
};

/// Servers bound and not yet serving, sharing one shutdown switch and one
/// metrics registry.
#[derive(Debug)]
pub struct Suite {
    servers: Vec<(Service, BoundServer)>,
    gateway: Option<BoundGateway>,
    server: ServerOptions,
    shutdown: Shutdown,
    metrics: Metrics,
}

impl Suite {
    /// No servers yet; those added will run under `server`'s flags, stop with
    /// `shutdown` and record into `metrics`.
    pub fn new(server: ServerOptions, shutdown: Shutdown, metrics: Metrics) -> Self {
        Self {
            servers: Vec::new(),
            gateway: None,
            server,
            shutdown,
            metrics,
        }
    }

    /// Builds each `service` from `options` and binds it at its address;
    /// binding all first means a taken port fails before anything serves.
    pub async fn bind(
        mut self,
        listen: &[(Service, SocketAddr)],
        options: &ServiceOptions,
    ) -> Result<Self, SuiteError> {
        for &(service, addr) in listen {
            self = self
                .bind_handler(Handler::open(service, options).await?, addr)
                .await?;
        }
        Ok(self)
    }

    /// Binds a server hosting `handler` at `addr`: for a test that keeps a
    /// hand on what it built.
    pub async fn bind_handler(
        mut self,
        handler: Handler,
        addr: SocketAddr,
    ) -> Result<Self, SuiteError> {
        let service = handler.service();
        let bound = handler
            .server(self.server.clone(), self.shutdown.clone())
            .record_into(&self.metrics)
            .bind(addr)
            .await?;
        self.servers.push((service, bound));
        Ok(self)
    }

    /// Where a gateway should call: the services bound here, and `elsewhere`
    /// for the others (a list, or a `dns:///` name, spreads its calls).
    pub fn upstreams(&self, elsewhere: UpstreamOptions) -> UpstreamOptions {
        let mut upstreams = elsewhere;
        for (service, server) in &self.servers {
            let mut addr = server.local_addr();
            if addr.ip().is_unspecified() {
                addr.set_ip(Ipv4Addr::LOCALHOST.into());
            }
            let url = format!("http://{addr}");
            match service {
                Service::Transform => upstreams.transform_addr = url,
                Service::Database => upstreams.database_addr = url,
                Service::Weather => upstreams.weather_addr = url,
                Service::Chat => upstreams.chat_addr = url,
            }
        }
        upstreams
    }

    /// Binds the gateway in front of `upstreams`, its unconfigured listeners
    /// on `host`, under the suite's flags.
    pub async fn bind_gateway(
        mut self,
        options: GatewayOptions,
        upstreams: UpstreamOptions,
        host: IpAddr,
    ) -> Result<Self, SuiteError> {
        let gateway = Gateway::under(
            options,
            upstreams,
            &self.server,
            self.shutdown.clone(),
            &self.metrics,
        );
        self.gateway = Some(gateway.bind(host).await?);
        Ok(self)
    }

    /// Prints every server's announce line (`transform listening on ADDR`).
    pub fn announce(&self) -> io::Result<()> {
        for (_, server) in &self.servers {
            server.announce()?;
        }
        if let Some(gateway) = &self.gateway {
            gateway.announce()?;
        }
        Ok(())
    }

    /// Serves everything on background tasks, SERVING by the time this
    /// returns.
    pub fn spawn(self) -> Result<RunningSuite, SuiteError> {
        let mut servers = Vec::with_capacity(self.servers.len());
        for (service, server) in self.servers {
            servers.push((service, server.spawn()?));
        }
        Ok(RunningSuite {
            servers,
            gateway: self.gateway.map(BoundGateway::spawn),
            shutdown: self.shutdown,
        })
    }
}

/// The suite serving.
#[derive(Debug)]
pub struct RunningSuite {
    servers: Vec<(Service, RunningServer)>,
    gateway: Option<RunningGateway>,
    shutdown: Shutdown,
}

impl RunningSuite {
    /// The server of `service`, if the suite runs it.
    pub fn server(&self, service: Service) -> Option<&RunningServer> {
        self.servers
            .iter()
            .find_map(|(running, server)| (*running == service).then_some(server))
    }

    /// The gateway, if the suite runs one.
    pub fn gateway(&self) -> Option<&RunningGateway> {
        self.gateway.as_ref()
    }

    /// Waits until everything has stopped; one server failing stops the
    /// others too, and its failure is the result.
    pub async fn stopped(self) -> Result<(), SuiteError> {
        let mut running = JoinSet::new();
        for (_, server) in self.servers {
            running.spawn(async move { server.stopped().await.map_err(SuiteError::from) });
        }
        if let Some(gateway) = self.gateway {
            running.spawn(async move {
                gateway.stopped().await;
                Ok(())
            });
        }
        let mut failure = None;
        while let Some(stopped) = running.join_next().await {
            if let Err(error) = stopped.map_err(SuiteError::from).and_then(|result| result) {
                self.shutdown.request();
                failure.get_or_insert(error);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Starts the shutdown sequence and waits until everything has stopped.
    pub async fn stop(self) -> Result<(), SuiteError> {
        self.shutdown.request();
        self.stopped().await
    }
}
