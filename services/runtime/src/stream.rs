//! [`UntilDrained`]: the response stream of a long-lived call, which ends when
//! the server drains rather than holding the drain up.
//!
//! Every streaming handler needs the same rules: pass the source's items on,
//! stop after the first error (gRPC ends a call with its status), and when the
//! server starts draining say goodbye at once, even to a source that always has
//! an item ready; but answer whole an input already taken, so a client is never
//! left guessing whether a request it sent was applied. Services give the
//! source and the goodbye; this module keeps the rules.

use std::{
    future::{self, Future},
    mem,
    pin::Pin,
    task::{Context, Poll, ready},
};

use futures_util::{Stream, StreamExt as _, stream::Map};
use pin_project_lite::pin_project;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::shutdown::DrainSignal;

pin_project! {
    /// A response stream: its source's answers up to and including the first
    /// error, or, once the server drains, the service's goodbye (an UNAVAILABLE
    /// status; or an event, then the status) and nothing after it.
    ///
    /// The source yields futures, one per input it takes (a request, a tick):
    /// each is the work of answering that input. Only the wait for the next
    /// input races the drain, and the drain is looked at first (`biased`), so
    /// a busy source cannot hold it up; an input once taken is answered whole
    /// before the goodbye. Costs one drain registration per call; nothing is
    /// allocated per item.
    #[must_use = "streams do nothing unless polled"]
    pub struct UntilDrained<S, F, I>
    where
        S: Stream,
        I: IntoIterator,
    {
        #[pin]
        source: S,
        // The answer being worked out, for the input last taken.
        #[pin]
        in_hand: Option<S::Item>,
        #[pin]
        draining: WaitForCancellationFutureOwned,
        phase: Phase<F, I::IntoIter>,
    }
}

/// Where an [`UntilDrained`] stream stands.
enum Phase<F, R> {
    /// Passing the source's answers on; holds the goodbye for the drain.
    Live(F),
    /// The server is draining: sending the goodbye.
    Farewell(R),
    /// Over: the source ended or failed, or the goodbye is sent.
    Ended,
}

impl<F, I> Phase<F, I::IntoIter>
where
    F: FnOnce() -> I,
    I: IntoIterator,
{
    /// Leaves [`Phase::Live`] for the goodbye the service gives now.
    fn say_goodbye(&mut self) {
        if let Self::Live(farewell) = mem::replace(self, Self::Ended) {
            *self = Self::Farewell(farewell().into_iter());
        }
    }
}

/// A source whose items are answers already: each is ready at once.
type AnswersAtOnce<S> = Map<S, fn(<S as Stream>::Item) -> future::Ready<<S as Stream>::Item>>;

impl<S, F, I> UntilDrained<AnswersAtOnce<S>, F, I>
where
    S: Stream,
    F: FnOnce() -> I,
    I: IntoIterator,
{
    /// Passes on `source`, whose items are the answers, until the server
    /// behind `drain` drains, then ends with what `farewell` returns (called
    /// at most once, when the drain starts).
    pub fn new(source: S, drain: &DrainSignal, farewell: F) -> Self {
        let at_once: fn(S::Item) -> future::Ready<S::Item> = future::ready;
        UntilDrained::answering(source.map(at_once), drain, farewell)
    }
}

impl<S, F, I> UntilDrained<S, F, I>
where
    S: Stream,
    F: FnOnce() -> I,
    I: IntoIterator,
{
    /// Answers each input `answers` takes, with the future it yields for it,
    /// until the server behind `drain` drains, then ends with what `farewell`
    /// returns (called at most once, when the drain starts).
    pub fn answering(answers: S, drain: &DrainSignal, farewell: F) -> Self {
        Self {
            source: answers,
            in_hand: None,
            draining: drain.draining_owned(),
            phase: Phase::Live(farewell),
        }
    }
}

impl<S, A, F, I, T, E> Stream for UntilDrained<S, F, I>
where
    S: Stream<Item = A>,
    A: Future<Output = Result<T, E>>,
    F: FnOnce() -> I,
    I: IntoIterator<Item = Result<T, E>>,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(answer) = this.in_hand.as_mut().as_pin_mut() {
                let item = ready!(answer.poll(cx));
                this.in_hand.set(None);
                if item.is_err() {
                    *this.phase = Phase::Ended;
                }
                return Poll::Ready(Some(item));
            }
            if matches!(this.phase, Phase::Live(_)) && this.draining.as_mut().poll(cx).is_ready() {
                this.phase.say_goodbye();
            }
            match this.phase {
                Phase::Live(_) => {
                    let Some(answer) = ready!(this.source.as_mut().poll_next(cx)) else {
                        *this.phase = Phase::Ended;
                        return Poll::Ready(None);
                    };
                    this.in_hand.set(Some(answer));
                }
                Phase::Farewell(items) => {
                    let item = items.next();
                    if item.is_none() {
                        *this.phase = Phase::Ended;
                    }
                    return Poll::Ready(item);
                }
                Phase::Ended => return Poll::Ready(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::{StreamExt as _, stream};
    use tokio::time::{Instant, sleep};

    use super::UntilDrained;
    use crate::Shutdown;

    type Item = Result<u32, &'static str>;

    /// What the tests' services say when the server drains: an event, then a
    /// status, as chat does.
    fn goodbye() -> [Item; 2] {
        [Ok(0), Err("shutting down")]
    }

    /// A source with an item every second, for ever.
    fn ticking() -> impl futures_util::Stream<Item = Item> {
        stream::unfold(1, |n| async move {
            sleep(Duration::from_secs(1)).await;
            Some((Ok(n), n + 1))
        })
    }

    async fn collect(stream: impl futures_util::Stream<Item = Item>) -> Vec<Item> {
        stream.collect().await
    }

    #[tokio::test]
    async fn passes_the_items_on_until_the_source_ends() {
        let shutdown = Shutdown::new();
        let source = stream::iter([Ok(1), Ok(2)]);
        let items = collect(UntilDrained::new(source, &shutdown.drain_signal(), goodbye)).await;
        assert_eq!(items, [Ok(1), Ok(2)]);
    }

    #[tokio::test]
    async fn ends_after_the_first_error() {
        let shutdown = Shutdown::new();
        let source = stream::iter([Ok(1), Err("broken"), Ok(2)]);
        let items = collect(UntilDrained::new(source, &shutdown.drain_signal(), goodbye)).await;
        assert_eq!(items, [Ok(1), Err("broken")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_ends_the_stream_with_the_goodbye_at_once() {
        let shutdown = Shutdown::new();
        let mut stream = Box::pin(UntilDrained::new(
            ticking(),
            &shutdown.drain_signal(),
            goodbye,
        ));
        assert_eq!(stream.next().await, Some(Ok(1)));
        let drained_at = Instant::now();
        shutdown.start_draining();
        assert_eq!(collect(stream).await, goodbye());
        assert_eq!(Instant::now(), drained_at, "no wait for the next tick");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_wakes_a_stream_waiting_on_its_source() {
        let shutdown = Shutdown::new();
        let stream =
            UntilDrained::new(stream::pending::<Item>(), &shutdown.drain_signal(), goodbye);
        let started = Instant::now();
        let switch = shutdown.clone();
        tokio::spawn(async move {
            sleep(Duration::from_secs(5)).await;
            switch.start_draining();
        });
        assert_eq!(collect(stream).await, goodbye());
        assert_eq!(Instant::now() - started, Duration::from_secs(5));
    }

    #[tokio::test]
    async fn the_drain_wins_over_an_item_ready_at_the_same_time() {
        let shutdown = Shutdown::new();
        shutdown.start_draining();
        let source = stream::repeat(Ok(7));
        let items = collect(UntilDrained::new(source, &shutdown.drain_signal(), goodbye)).await;
        assert_eq!(items, goodbye());
    }

    #[tokio::test(start_paused = true)]
    async fn an_input_taken_before_the_drain_is_answered_before_the_goodbye() {
        let shutdown = Shutdown::new();
        // Each input takes a second to answer.
        let answers = stream::iter([1, 2]).map(|n| async move {
            sleep(Duration::from_secs(1)).await;
            Ok(n)
        });
        let mut stream = Box::pin(UntilDrained::answering(
            answers,
            &shutdown.drain_signal(),
            goodbye,
        ));
        let switch = shutdown.clone();
        tokio::spawn(async move {
            sleep(Duration::from_millis(500)).await;
            switch.start_draining();
        });
        assert_eq!(stream.next().await, Some(Ok(1)));
        assert_eq!(collect(stream).await, goodbye());
    }

    #[tokio::test]
    async fn the_goodbye_is_asked_for_only_when_the_server_drains() {
        let shutdown = Shutdown::new();
        let source = stream::iter([Ok(1)]);
        let farewell = || -> [Item; 1] { panic!("asked for a goodbye without a drain") };
        let items = collect(UntilDrained::new(
            source,
            &shutdown.drain_signal(),
            farewell,
        ))
        .await;
        assert_eq!(items, [Ok(1)]);
    }
}
