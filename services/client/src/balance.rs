//! [`Balanced`]: calls spread over every ready endpoint of a target.
//!
//! HTTP/2 multiplexes every call of a client onto one connection, so a client
//! with one channel to a Kubernetes ClusterIP sends everything to one pod and
//! replicas added later get nothing. A balanced channel keeps one channel per
//! endpoint (a fixed list of URLs, or every address of a `dns:///` name) and
//! picks one per call: the less loaded of two chosen at random ("power of two
//! choices"), where load is the calls and streams open on it now.
//!
//! An endpoint whose call fails with UNAVAILABLE (it refused the connection,
//! reset it, or said it is shutting down) is *ejected*: it gets no calls until
//! a health check through it answers, retried with backoff up to the
//! re-resolution interval. A failure also asks for an early re-resolution,
//! so an address that is gone is dropped soon after. A call never waits for a
//! dead endpoint: with every endpoint ejected, calls still go to one and fail
//! fast with its error.

use std::{
    collections::HashMap,
    fmt,
    future::{Future, poll_fn},
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::{
    sync::Notify,
    time::{Instant, sleep_until},
};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{Code, body::Body, transport::Channel};
use tower_service::Service;
use tracing::debug;

use crate::resolve::Resolve;

/// Errors a balanced channel's calls fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Least time between two re-resolutions asked for by failures.
const MIN_RERESOLVE: Duration = Duration::from_secs(1);
/// First wait before an ejected endpoint is health-checked.
const FIRST_PROBE: Duration = Duration::from_millis(250);

/// One endpoint of a target.
pub(crate) struct Backend {
    /// What is dialled, e.g. `http://10.0.0.7:50051`.
    pub(crate) url: String,
    channel: Channel,
    /// Calls and streams open on it now: the load the balancer compares.
    in_flight: AtomicUsize,
    /// False while ejected.
    healthy: AtomicBool,
}

impl Backend {
    pub(crate) fn new(url: String, channel: Channel, healthy: bool) -> Arc<Self> {
        Arc::new(Self {
            url,
            channel,
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(healthy),
        })
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether calls may be sent to it (it has not been ejected).
    pub(crate) fn is_in_rotation(&self) -> bool {
        self.is_healthy()
    }
}

/// Builds the backend of a URL (a lazily connecting channel).
pub(crate) type MakeBackend = Box<dyn Fn(&str) -> Option<Arc<Backend>> + Send + Sync>;

/// The endpoints of one balanced channel, shared by its clones and its upkeep.
pub(crate) struct Pool {
    backends: ArcSwap<Vec<Arc<Backend>>>,
    /// Why the last resolution found nothing, for the calls that fail on it.
    problem: Mutex<Option<String>>,
    /// Set once the first resolution is done: calls wait for it.
    resolved: AtomicBool,
    /// Wakes calls waiting for the first resolution.
    changed: Notify,
    /// Wakes the upkeep: a call failed, re-resolve and probe soon.
    failed: Notify,
}

impl Pool {
    pub(crate) fn new(backends: Vec<Arc<Backend>>, resolved: bool) -> Arc<Self> {
        Arc::new(Self {
            backends: ArcSwap::from_pointee(backends),
            problem: Mutex::new(None),
            resolved: AtomicBool::new(resolved),
            changed: Notify::new(),
            failed: Notify::new(),
        })
    }

    /// The endpoints now.
    pub(crate) fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.backends.load_full()
    }

    /// Power of two choices among the healthy endpoints; any endpoint when
    /// none is healthy (the call then fails fast with that endpoint's error).
    fn pick(&self) -> Option<Arc<Backend>> {
        let backends = self.backends.load();
        let healthy = backends
            .iter()
            .filter(|backend| backend.is_healthy())
            .count();
        if healthy == 0 {
            let index = random_below(backends.len())?;
            return backends.get(index).cloned();
        }
        let nth_healthy = |n: usize| {
            backends
                .iter()
                .filter(|backend| backend.is_healthy())
                .nth(n)
                .cloned()
        };
        let first = nth_healthy(random_below(healthy)?)?;
        if healthy == 1 {
            return Some(first);
        }
        let second = nth_healthy(random_below(healthy)?)?;
        let load = |backend: &Backend| backend.in_flight.load(Ordering::Relaxed);
        Some(if load(&second) < load(&first) {
            second
        } else {
            first
        })
    }

    /// An endpoint for the next call, waiting for the first resolution.
    async fn pick_or_wait(&self) -> Result<Arc<Backend>, BoxError> {
        loop {
            let changed = self.changed.notified();
            if let Some(backend) = self.pick() {
                return Ok(backend);
            }
            if self.resolved.load(Ordering::Acquire) {
                let problem = self
                    .problem
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
                    .unwrap_or_else(|| "no endpoints".to_owned());
                // A Status keeps its code through tonic (any other error
                // would reach the caller as UNKNOWN).
                return Err(Box::new(tonic::Status::unavailable(problem)));
            }
            changed.await;
        }
    }

    /// Takes `backend` out of rotation until a health check brings it back.
    fn eject(&self, backend: &Backend) {
        if backend.healthy.swap(false, Ordering::Relaxed) {
            debug!(endpoint = %backend.url, "endpoint ejected after a failed call");
        }
        self.failed.notify_one();
    }

    /// Replaces the endpoints with those of `urls`, keeping the ones already
    /// known (and their connections).
    pub(crate) fn update(&self, urls: &[String], make: &MakeBackend) {
        let current = self.backends.load_full();
        let mut next = Vec::with_capacity(urls.len());
        for url in urls {
            match current.iter().find(|backend| &backend.url == url) {
                Some(backend) => next.push(backend.clone()),
                None => next.extend(make(url)),
            }
        }
        for gone in current
            .iter()
            .filter(|backend| !urls.contains(&backend.url))
        {
            debug!(endpoint = %gone.url, "endpoint dropped: no longer resolved");
        }
        self.backends.store(Arc::new(next));
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.mark_resolved();
    }

    /// Records why resolution found nothing (the endpoints known are kept).
    pub(crate) fn resolution_failed(&self, problem: String) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem);
        self.mark_resolved();
    }

    fn mark_resolved(&self) {
        self.resolved.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }
}

/// A cheap random number below `bound` (none when `bound` is 0): xorshift on a
/// per-thread state, since balancing needs spread, not secrecy.
fn random_below(bound: usize) -> Option<usize> {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9E37_79B9_7F4A_7C15, |since| u64::from(since.subsec_nanos()));
            // A per-thread address keeps threads started together apart.
            let here = (&raw const seed) as u64;
            (seed ^ here.rotate_left(32)) | 1
        });
    }
    if bound == 0 {
        return None;
    }
    let next = STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    // usize is 64 bits wide or less here: the remainder fits.
    usize::try_from(next % (bound as u64)).ok()
}

/// A channel whose calls are spread over a pool of endpoints.
#[derive(Clone)]
pub struct Balanced {
    pool: Arc<Pool>,
    /// Stops the upkeep when the last clone goes.
    _upkeep: Arc<DropGuard>,
}

impl fmt::Debug for Balanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self
            .pool
            .backends()
            .iter()
            .map(|backend| backend.url.clone())
            .collect();
        f.debug_struct("Balanced")
            .field("endpoints", &urls)
            .finish_non_exhaustive()
    }
}

impl Balanced {
    pub(crate) fn new(pool: Arc<Pool>, upkeep: CancellationToken) -> Self {
        Self {
            pool,
            _upkeep: Arc::new(upkeep.drop_guard()),
        }
    }

    /// The URLs of the endpoints known now and whether each is in rotation.
    pub fn endpoints(&self) -> Vec<(String, bool)> {
        self.pool
            .backends()
            .iter()
            .map(|backend| (backend.url.clone(), backend.is_healthy()))
            .collect()
    }
}

impl Service<http::Request<Body>> for Balanced {
    type Response = http::Response<TrackedBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The endpoint is chosen per call; its own readiness is awaited there.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let pool = self.pool.clone();
        Box::pin(async move {
            let backend = pool.pick_or_wait().await?;
            let open = Open::new(&backend);
            let mut channel = backend.channel.clone();
            let answer = match poll_fn(|cx| channel.poll_ready(cx)).await {
                Ok(()) => channel.call(request).await,
                Err(error) => Err(error),
            };
            match answer {
                Ok(response) => {
                    if trailers_only_unavailable(&response) {
                        pool.eject(&backend);
                    }
                    Ok(response.map(|body| TrackedBody {
                        inner: body,
                        open: Some(open),
                        pool: pool.clone(),
                    }))
                }
                Err(error) => {
                    pool.eject(&backend);
                    Err(error.into())
                }
            }
        })
    }
}

/// An answer that is only headers saying UNAVAILABLE: the server is going away.
fn trailers_only_unavailable(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == b"14")
}

/// One open call on a backend, counted until dropped.
struct Open(Arc<Backend>);

impl Open {
    fn new(backend: &Arc<Backend>) -> Self {
        backend.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(backend.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// A response body that keeps its call counted on its endpoint until it
    /// ends, and ejects the endpoint when it breaks (a reset, a connection
    /// lost mid-stream).
    pub struct TrackedBody {
        #[pin]
        inner: Body,
        open: Option<Open>,
        pool: Arc<Pool>,
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Err(status))) => {
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Internal
                ) && let Some(open) = this.open.as_ref()
                {
                    this.pool.eject(&open.0);
                }
                *this.open = None;
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && trailers
                        .get("grpc-status")
                        .is_some_and(|status| status.as_bytes() == b"14")
                    && let Some(open) = this.open.as_ref()
                {
                    this.pool.eject(&open.0);
                }
            }
            Poll::Ready(None) => *this.open = None,
            Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How an ejected endpoint is checked: through its channel, with the health
/// service; an endpoint with no health service that answers UNIMPLEMENTED is
/// reachable, so back in rotation.
async fn probe(backend: &Backend, timeout: Duration) -> bool {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut client = HealthClient::new(backend.channel.clone());
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(answer)) => answer.into_inner().status() == ServingStatus::Serving,
        Ok(Err(status)) => status.code() == Code::Unimplemented,
        Err(_) => false,
    }
}

/// What the upkeep of a pool needs.
pub(crate) struct Upkeep {
    pub(crate) pool: Arc<Pool>,
    /// The name to resolve, when the target is `dns:///`.
    pub(crate) dns: Option<(String, u16)>,
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) make: MakeBackend,
    /// How often the name is resolved again; also the longest wait between
    /// two health checks of an ejected endpoint.
    pub(crate) interval: Duration,
    /// How long a health check may take.
    pub(crate) probe_timeout: Duration,
    pub(crate) url_of: fn(SocketAddr, &str) -> String,
    pub(crate) scheme: &'static str,
}

impl Upkeep {
    /// Resolves, probes ejected endpoints, and waits, until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut next_resolve = Instant::now();
        let mut last_resolve: Option<Instant> = None;
        // When each ejected endpoint is checked next, and the wait after that.
        let mut probes: HashMap<String, (Instant, Duration)> = HashMap::new();
        loop {
            let now = Instant::now();
            if self.dns.is_some() && now >= next_resolve {
                self.resolve().await;
                last_resolve = Some(Instant::now());
                next_resolve = Instant::now() + self.interval;
            }
            self.probe_due(&mut probes).await;

            let next_probe = probes.values().map(|(at, _)| *at).min();
            let wake = next_probe.map_or(next_resolve, |probe| probe.min(next_resolve));
            let wake = if self.dns.is_none() && next_probe.is_none() {
                Instant::now() + self.interval
            } else {
                wake
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = sleep_until(wake) => {}
                () = self.pool.failed.notified() => {
                    // A failure: re-resolve soon (not more than once a second),
                    // and let the probe schedule pick up the ejected endpoint.
                    let soonest = last_resolve.map_or(Instant::now(), |at| at + MIN_RERESOLVE);
                    next_resolve = next_resolve.min(soonest);
                }
            }
        }
    }

    async fn resolve(&self) {
        let Some((host, port)) = &self.dns else {
            return;
        };
        match self.resolver.resolve(host, *port).await {
            Ok(addresses) if !addresses.is_empty() => {
                let mut urls: Vec<String> = addresses
                    .iter()
                    .map(|address| (self.url_of)(*address, self.scheme))
                    .collect();
                urls.sort();
                urls.dedup();
                self.pool.update(&urls, &self.make);
            }
            Ok(_) => self
                .pool
                .resolution_failed(format!("dns:///{host}:{port}: the name has no addresses")),
            Err(error) => self
                .pool
                .resolution_failed(format!("dns:///{host}:{port}: cannot resolve: {error}")),
        }
    }

    /// Health-checks the ejected endpoints whose turn has come; brings back
    /// those that answer, and backs off on the others.
    async fn probe_due(&self, probes: &mut HashMap<String, (Instant, Duration)>) {
        let backends = self.pool.backends();
        probes.retain(|url, _| {
            backends
                .iter()
                .any(|backend| &backend.url == url && !backend.is_healthy())
        });
        let now = Instant::now();
        for backend in backends.iter().filter(|backend| !backend.is_healthy()) {
            let (at, wait) = *probes
                .entry(backend.url.clone())
                .or_insert((now + FIRST_PROBE, FIRST_PROBE));
            if at > now {
                continue;
            }
            if probe(backend, self.probe_timeout).await {
                backend.healthy.store(true, Ordering::Relaxed);
                probes.remove(&backend.url);
                debug!(endpoint = %backend.url, "endpoint back in rotation");
            } else {
                let wait = (wait * 2).min(self.interval.max(FIRST_PROBE));
                probes.insert(backend.url.clone(), (Instant::now() + wait, wait));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::random_below;

    #[test]
    fn random_picks_cover_the_range_and_stay_inside_it() {
        let mut seen = [0_u32; 5];
        for _ in 0..5_000 {
            seen[random_below(5).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&count| count > 700), "{seen:?}");
        assert_eq!(random_below(0), None);
        assert_eq!(random_below(1), Some(0));
    }
}
