//! Entry creations over one `StreamMutateEntry` stream per filer, instead of
//! one unary `CreateEntry` call each. A unary call costs both ends a new
//! HTTP/2 stream (headers out and back, a status trailer); a message on an
//! open stream costs a data frame, and many in flight share reads and
//! writes. Measured on a fresh 4.48 filer, the stream took 28 % less of its
//! CPU per entry, and the rate of a catch-up on a busy machine is its CPU.
//!
//! The stream is driven on gRPC's own completion-queue threads: one future
//! writes what callers queue (in batches, as they come), another hands each
//! answer to the caller waiting for its request id. Callers block on their
//! answer with the client's deadline. The filer runs requests for different
//! paths in parallel; a caller waits for its answer before its next step,
//! so the order of one path's changes is the caller's.
//!
//! At most `IN_FLIGHT` requests are out on a stream at once; more are held
//! back here, in order, and sent as answers free room (the caller does not
//! wait for that: its request is on its way).
//!
//! A stream that breaks fails the requests it had in flight as passing (the
//! caller's retry opens a new one); one that misses a deadline is retired
//! (no new requests, the rest drain). A filer that does not know the call
//! (an older one, or a test's mock) is asked by unary calls from then on.

use super::slot::Slot;
use crate::error::Error;
use crate::pb::filer::*;
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::{SinkExt, StreamExt};
use grpcio::{CallOption, Client, RpcStatusCode, WriteFlags};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The most requests out on one stream, unanswered. Should the client go
/// (a process killed), a 4.48 filer still runs every request it has,
/// with a cancelled context, and a cancelled creation not yet past its
/// chunk cleanup crashes it (a nil IntervalList in CompactFileChunks). So
/// few are out: with 64 (what the filer runs at once) a loaded machine saw
/// two crashes in 60 kills, where unparked creations (at most one per
/// event worker, fewer most of the time) had shown none. 16 cost 7 % of
/// the catch-up's files/s against 64 (BENCHMARKS.md, 09:39).
pub const IN_FLIGHT: usize = 16;

/// Why a request got no answer from the stream.
#[derive(Debug, Clone)]
pub enum Lost {
    /// The filer does not serve `StreamMutateEntry`: ask by unary calls.
    Unsupported,
    /// The stream broke, or the answer missed its deadline.
    Failed(Error),
}

/// The mutation stream to one filer, opened on first use and again after
/// it broke.
#[derive(Default)]
pub struct Mutations {
    open: Mutex<Option<Arc<Open>>>,
    unsupported: AtomicBool,
}

/// One open stream: where requests are queued (dropping the last handle
/// closes the stream's sending half, once the queued ones are written).
struct Open {
    queue: UnboundedSender<(StreamMutateEntryRequest, WriteFlags)>,
    waiting: Arc<Waiting>,
}

/// The callers waiting for an answer, by request id; closed once the
/// stream has ended, so that no caller starts waiting on a dead stream.
#[derive(Default)]
struct Waiting {
    by_id: Mutex<Callers>,
}

/// Who waits for which request id, the last id given; the requests out
/// and those held back; and why the stream ended, once it has.
#[derive(Default)]
struct Callers {
    waiting: HashMap<u64, Arc<Slot<Answer>>>,
    last: u64,
    /// Requests sent and not answered yet.
    out: usize,
    /// Requests not sent while `out` is at `IN_FLIGHT`, oldest first.
    held: VecDeque<StreamMutateEntryRequest>,
    ended: Option<Lost>,
}

type Answer = std::result::Result<StreamMutateEntryResponse, Lost>;

/// A request given its id and its answer's slot; `now`: the request when
/// it is to be sent at once (else it is held back).
struct Entered {
    id: u64,
    answer: Arc<Slot<Answer>>,
    now: Option<StreamMutateEntryRequest>,
}

impl Waiting {
    /// Gives `req` a request id and its answer a slot; returns `req` when
    /// it is to be sent now, else holds it back (`IN_FLIGHT`). `Err` when
    /// the stream ended.
    fn enter(&self, mut req: StreamMutateEntryRequest) -> std::result::Result<Entered, Lost> {
        let mut g = self.by_id.lock().unwrap();
        if let Some(lost) = &g.ended {
            return Err(lost.clone());
        }
        g.last += 1;
        let (id, answer) = (g.last, Arc::new(Slot::default()));
        g.waiting.insert(id, answer.clone());
        req.request_id = id;
        let now = if g.out < IN_FLIGHT {
            g.out += 1;
            Some(req)
        } else {
            g.held.push_back(req);
            None
        };
        Ok(Entered { id, answer, now })
    }

    /// A caller gave up waiting (its request, if held back, is not sent).
    fn leave(&self, id: u64) {
        let mut g = self.by_id.lock().unwrap();
        g.waiting.remove(&id);
        g.held.retain(|r| r.request_id != id);
    }

    /// Hands an answer to its caller (one that gave up waiting is gone);
    /// returns the requests held back longest, now to be sent: once half of
    /// `IN_FLIGHT` is free, as many as fit (written together).
    fn answer(&self, resp: StreamMutateEntryResponse) -> Vec<StreamMutateEntryRequest> {
        if !resp.is_last {
            return Vec::new();
        }
        let (caller, next) = {
            let mut g = self.by_id.lock().unwrap();
            let caller = g.waiting.remove(&resp.request_id);
            g.out = g.out.saturating_sub(1);
            let mut next = Vec::new();
            if g.out <= IN_FLIGHT / 2 {
                let n = (IN_FLIGHT - g.out).min(g.held.len());
                next.extend(g.held.drain(..n));
                g.out += n;
            }
            (caller, next)
        };
        if let Some(slot) = caller {
            slot.fill(Ok(resp));
        }
        next
    }

    /// The stream ended: every caller still waiting, and any that comes
    /// later, gets `lost`.
    fn end(&self, lost: Lost) {
        let mut g = self.by_id.lock().unwrap();
        for (_, slot) in g.waiting.drain() {
            slot.fill(Err(lost.clone()));
        }
        g.held.clear();
        g.ended.get_or_insert(lost);
    }
}

/// A creation sent on a stream, its answer to come.
pub struct Sent {
    open: Arc<Open>,
    id: u64,
    answer: Arc<Slot<Answer>>,
}

impl Sent {
    /// Waits up to `deadline` for the answer; a stream that broke, or
    /// missed the deadline, is retired from `mutations`.
    pub fn wait(
        self,
        mutations: &Mutations,
        deadline: Duration,
    ) -> std::result::Result<StreamMutateEntryResponse, Lost> {
        match self.answer.wait(deadline) {
            Some(a) => a.map_err(|lost| {
                mutations.retire(&self.open);
                mutations.judge(lost)
            }),
            None => {
                self.open.waiting.leave(self.id);
                mutations.retire(&self.open);
                Err(Lost::Failed(Error::transient(format!(
                    "no answer on the StreamMutateEntry stream within {deadline:?}"
                ))))
            }
        }
    }
}

/// How a stream's end reads to its callers.
fn lost(e: Option<grpcio::Error>) -> Lost {
    match e {
        Some(grpcio::Error::RpcFailure(st)) if st.code() == RpcStatusCode::UNIMPLEMENTED => {
            Lost::Unsupported
        }
        Some(e) => Lost::Failed(Error::from(e)),
        None => Lost::Failed(Error::transient(
            "the filer ended the StreamMutateEntry stream",
        )),
    }
}

impl Mutations {
    /// Whether the filer is asked by unary calls instead.
    pub fn unsupported(&self) -> bool {
        self.unsupported.load(Ordering::Relaxed)
    }

    /// Sends one creation on the stream and waits up to `deadline` for its
    /// answer.
    pub fn create(
        &self,
        client: &Client,
        req: &CreateEntryRequest,
        deadline: Duration,
    ) -> std::result::Result<StreamMutateEntryResponse, Lost> {
        self.send(client, req.clone())?.wait(self, deadline)
    }

    /// Queues one creation on the stream (or holds it back: `IN_FLIGHT`);
    /// its answer is waited for with `Sent::wait`. The caller goes on
    /// meanwhile: many sent by one thread cost no thread switch each.
    pub fn send(
        &self,
        client: &Client,
        req: CreateEntryRequest,
    ) -> std::result::Result<Sent, Lost> {
        let open = self.stream(client)?;
        let mut msg = StreamMutateEntryRequest::new();
        msg.set_create_request(req);
        let Entered { id, answer, now } = match open.waiting.enter(msg) {
            Ok(w) => w,
            Err(lost) => {
                // Ended since it was taken: the next call opens another.
                self.retire(&open);
                return Err(self.judge(lost));
            }
        };
        let Some(msg) = now else {
            return Ok(Sent { open, id, answer });
        };
        if open
            .queue
            .unbounded_send((msg, WriteFlags::default()))
            .is_err()
        {
            open.waiting.leave(id);
            self.retire(&open);
            return Err(Lost::Failed(Error::transient(
                "the StreamMutateEntry stream closed before the request was sent",
            )));
        }
        Ok(Sent { open, id, answer })
    }
    /// Notes a filer that does not serve the call.
    fn judge(&self, lost: Lost) -> Lost {
        if matches!(lost, Lost::Unsupported) {
            self.unsupported.store(true, Ordering::Relaxed);
        }
        lost
    }

    /// Takes `open` out of use if it is still the current stream.
    fn retire(&self, open: &Arc<Open>) {
        let mut g = self.open.lock().unwrap();
        if g.as_ref().is_some_and(|o| Arc::ptr_eq(o, open)) {
            *g = None;
        }
    }

    /// The current stream, opened if there is none.
    fn stream(&self, client: &Client) -> std::result::Result<Arc<Open>, Lost> {
        let mut g = self.open.lock().unwrap();
        if let Some(open) = g.as_ref() {
            return Ok(open.clone());
        }
        let (mut sink, mut answers) = client
            .duplex_streaming(&super::rpc::STREAM_MUTATE_ENTRY, CallOption::default())
            .map_err(|e| Lost::Failed(Error::from(e)))?;
        // Requests queued together are written together: all but the last
        // of a round are buffered (`buffer_hint`), the last flushes them.
        sink.enhance_batch(true);
        let (queue, mut queued) = unbounded::<(StreamMutateEntryRequest, WriteFlags)>();
        let waiting = Arc::new(Waiting::default());
        let open = Arc::new(Open {
            queue,
            waiting: waiting.clone(),
        });
        client.spawn(async move {
            let mut queued = (&mut queued).map(Ok);
            if sink.send_all(&mut queued).await.is_ok() {
                // Every handle dropped: the filer sees the end of requests
                // and ends the stream once it has answered them.
                let _ = sink.close().await;
            }
        });
        let (w, weak) = (waiting, Arc::downgrade(&open));
        client.spawn(async move {
            let end = loop {
                match answers.next().await {
                    Some(Ok(resp)) => send_held(w.answer(resp), &weak),
                    Some(Err(e)) => break Some(e),
                    None => break None,
                }
            };
            w.end(lost(end));
        });
        *g = Some(open.clone());
        Ok(open)
    }
}

/// Sends requests held back, on the stream they were held for (alive
/// while their callers wait).
fn send_held(next: Vec<StreamMutateEntryRequest>, open: &Weak<Open>) {
    if next.is_empty() {
        return;
    }
    let Some(open) = open.upgrade() else { return };
    for req in next {
        // Fails only once the stream is closing: its end tells the caller.
        let _ = open.queue.unbounded_send((req, WriteFlags::default()));
    }
}

#[cfg(test)]
mod tests {
    //! A filer that cannot be had for real: one older than the call, and
    //! one whose stream answers out of order and then breaks. The stream
    //! against real filers is what every integration test creates through.
    use super::super::{rpc, FilerAddr, FilerClient};
    use super::IN_FLIGHT;
    use crate::error::ErrorKind;
    use crate::pb::filer::*;
    use futures::channel::mpsc::{unbounded, UnboundedSender};
    use futures::future::{select, Either};
    use futures::{SinkExt, StreamExt};
    use grpcio::{
        EnvBuilder, RpcStatus, RpcStatusCode, ServerBuilder, ServerCredentials, ServiceBuilder,
        WriteFlags,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Serves `CreateEntry` (refusing names that start with "refuse"), and
    /// with `stream` also `StreamMutateEntry`: requests to refuse are held
    /// until there are four, then answered in reverse order; a name starting
    /// with "break" fails the stream; one starting with "hold" is held until
    /// `release` (first stream only). Counts unary calls, streams opened and
    /// requests the streams received.
    struct Mock {
        server: grpcio::Server,
        port: u16,
        unary: Arc<AtomicUsize>,
        streams: Arc<AtomicUsize>,
        received: Arc<AtomicUsize>,
        release: UnboundedSender<()>,
    }

    fn answer(req: &CreateEntryRequest) -> CreateEntryResponse {
        let mut r = CreateEntryResponse::new();
        if req.entry.name.starts_with("refuse") {
            r.error = format!("refused {}", req.entry.name);
        }
        r
    }

    /// Answers `reqs` in order on the stream; false once it is gone.
    async fn answer_all(
        sink: &mut grpcio::DuplexSink<StreamMutateEntryResponse>,
        reqs: Vec<StreamMutateEntryRequest>,
    ) -> bool {
        for req in reqs {
            let mut r = StreamMutateEntryResponse::new();
            r.request_id = req.request_id;
            r.is_last = true;
            r.set_create_response(answer(req.create_request()));
            if sink.send((r, WriteFlags::default())).await.is_err() {
                return false;
            }
        }
        true
    }

    impl Mock {
        fn start(stream: bool) -> Mock {
            let env = Arc::new(EnvBuilder::new().cq_count(1).build());
            let (unary, streams) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let received = Arc::new(AtomicUsize::new(0));
            let (u, s, n) = (unary.clone(), streams.clone(), received.clone());
            let (release, released) = unbounded::<()>();
            let released = Arc::new(Mutex::new(Some(released)));
            let mut service = ServiceBuilder::new().add_unary_handler(
                &rpc::CREATE_ENTRY,
                move |ctx, req: CreateEntryRequest, sink| {
                    u.fetch_add(1, Ordering::SeqCst);
                    ctx.spawn(async move {
                        let _ = sink.success(answer(&req)).await;
                    });
                },
            );
            if stream {
                service = service.add_duplex_streaming_handler(
                    &rpc::STREAM_MUTATE_ENTRY,
                    move |ctx, mut requests, mut sink| {
                        s.fetch_add(1, Ordering::SeqCst);
                        let (n, mut released) = (n.clone(), released.lock().unwrap().take());
                        ctx.spawn(async move {
                            let (mut held, mut holding) = (Vec::new(), Vec::new());
                            loop {
                                let next = match released.as_mut() {
                                    None => requests.next().await,
                                    Some(r) => match select(requests.next(), r.next()).await {
                                        Either::Left((next, _)) => next,
                                        Either::Right((signal, _)) => {
                                            let all = std::mem::take(&mut holding);
                                            if signal.is_none() || !answer_all(&mut sink, all).await
                                            {
                                                return;
                                            }
                                            continue;
                                        }
                                    },
                                };
                                let Some(Ok(req)) = next else { break };
                                let req: StreamMutateEntryRequest = req;
                                n.fetch_add(1, Ordering::SeqCst);
                                if req.create_request().entry.name.starts_with("hold") {
                                    holding.push(req);
                                    continue;
                                }
                                if req.create_request().entry.name.starts_with("break") {
                                    let st = RpcStatus::with_message(
                                        RpcStatusCode::UNAVAILABLE,
                                        "broken".into(),
                                    );
                                    let _ = sink.fail(st).await;
                                    return;
                                }
                                let refused = req.create_request().entry.name.starts_with("refuse");
                                held.push(req);
                                if refused && held.len() < 4 {
                                    continue;
                                }
                                let reversed = held.drain(..).rev().collect();
                                if !answer_all(&mut sink, reversed).await {
                                    return;
                                }
                            }
                            let _ = sink.close().await;
                        });
                    },
                );
            }
            let mut server = ServerBuilder::new(env)
                .register_service(service.build())
                .build()
                .unwrap();
            let port = server
                .add_listening_port("127.0.0.1:0", ServerCredentials::insecure())
                .unwrap();
            server.start();
            Mock {
                server,
                port,
                unary,
                streams,
                received,
                release,
            }
        }

        fn client(&self) -> FilerClient {
            self.client_waiting(Duration::from_secs(10))
        }

        fn client_waiting(&self, timeout: Duration) -> FilerClient {
            let addr = FilerAddr::parse(&format!("127.0.0.1:{0}.{0}", self.port)).unwrap();
            FilerClient::connect(&addr, timeout)
        }
    }

    impl Drop for Mock {
        fn drop(&mut self) {
            let _ = futures::executor::block_on(self.server.shutdown());
        }
    }

    fn create(name: &str) -> CreateEntryRequest {
        let mut req = CreateEntryRequest::new();
        req.directory = "/d".into();
        req.entry.mut_or_insert_default().name = name.into();
        req
    }

    #[test]
    fn a_filer_without_the_stream_is_asked_by_unary_calls() {
        let mock = Mock::start(false);
        let c = mock.client();
        c.create(&create("a")).unwrap();
        c.create(&create("b")).unwrap();
        let e = c.create(&create("refuse-c")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Remote);
        assert!(e.to_string().contains("refused refuse-c"), "{e}");
        assert_eq!(mock.unary.load(Ordering::SeqCst), 3);
        assert!(c.ends[0].mutations.unsupported());
    }

    #[test]
    fn answers_reach_their_callers_in_any_order_and_a_broken_stream_is_reopened() {
        let mock = Mock::start(true);
        let c = mock.client();
        let answers: Vec<_> = std::thread::scope(|s| {
            let calls: Vec<_> = (0..4)
                .map(|i| {
                    let c = &c;
                    s.spawn(move || c.create(&create(&format!("refuse-{i}"))))
                })
                .collect();
            calls.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, a) in answers.iter().enumerate() {
            let e = a.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Remote);
            assert!(
                e.to_string()
                    .contains(&format!("/d/refuse-{i}: refused refuse-{i} ")),
                "{e}"
            );
        }
        c.create(&create("fine")).unwrap();
        let broken = c.create(&create("break")).unwrap_err();
        assert_eq!(broken.kind(), ErrorKind::Transient, "{broken}");
        c.create(&create("after")).unwrap();
        assert_eq!(mock.streams.load(Ordering::SeqCst), 2);
        assert_eq!(mock.unary.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn creations_sent_by_one_thread_are_answered_in_any_order() {
        let mock = Mock::start(true);
        let c = mock.client();
        // The mock holds refusals until there are four: all four are sent
        // before the first answer is waited for.
        let sent: Vec<_> = (0..4)
            .map(|i| {
                c.send_create(create(&format!("refuse-{i}")))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        for (i, s) in sent.into_iter().enumerate() {
            let e = c
                .finish_create(s, "/d", &format!("refuse-{i}"))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Remote);
            assert!(
                e.to_string()
                    .contains(&format!("/d/refuse-{i}: refused refuse-{i} ")),
                "{e}"
            );
        }
        let fine = c.send_create(create("fine")).unwrap().unwrap();
        c.finish_create(fine, "/d", "fine").unwrap();
        let broken = c.send_create(create("break")).unwrap().unwrap();
        let e = c.finish_create(broken, "/d", "break").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        assert_eq!(mock.unary.load(Ordering::SeqCst), 0);
    }

    /// Sends `IN_FLIGHT` creations the mock holds: the stream is full.
    fn fill(c: &FilerClient) -> Vec<super::super::SentCreate> {
        (0..IN_FLIGHT)
            .map(|i| {
                let sent = c.send_create(create(&format!("hold-{i}")));
                sent.unwrap().unwrap()
            })
            .collect()
    }

    #[test]
    fn creations_past_in_flight_are_held_back_until_answers_come() {
        let mock = Mock::start(true);
        let c = mock.client();
        let held = fill(&c);
        let more = c.send_create(create("more")).unwrap().unwrap();
        // The filer gets every held one; "more" once one is answered.
        while mock.received.load(Ordering::SeqCst) < IN_FLIGHT {
            std::thread::sleep(Duration::from_millis(5));
        }
        mock.release.unbounded_send(()).unwrap();
        c.finish_create(more, "/d", "more").unwrap();
        for (i, sent) in held.into_iter().enumerate() {
            c.finish_create(sent, "/d", &format!("hold-{i}")).unwrap();
        }
        assert_eq!(mock.received.load(Ordering::SeqCst), IN_FLIGHT + 1);
        assert_eq!(mock.streams.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_creation_held_back_on_a_stream_that_stays_full_fails_as_passing() {
        let mock = Mock::start(true);
        let c = mock.client_waiting(Duration::from_millis(300));
        let held = fill(&c);
        // The mock answers "more" at once, were it sent.
        let more = c.send_create(create("more")).unwrap().unwrap();
        let e = c.finish_create(more, "/d", "more").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        assert_eq!(mock.received.load(Ordering::SeqCst), IN_FLIGHT);
        // Retired: a new stream takes the next creation.
        let next = c.send_create(create("next")).unwrap().unwrap();
        c.finish_create(next, "/d", "next").unwrap();
        assert_eq!(mock.streams.load(Ordering::SeqCst), 2);
        drop(held);
    }

    #[test]
    fn a_creation_sent_to_a_filer_without_the_stream_fails_as_passing_then_is_given_back() {
        let mock = Mock::start(false);
        let c = mock.client();
        let sent = c.send_create(create("a")).unwrap().unwrap();
        let e = c.finish_create(sent, "/d", "a").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        assert!(c.ends[0].mutations.unsupported());
        // Known now: the request comes back, for a unary call.
        let back = c.send_create(create("b")).err().expect("given back");
        assert_eq!(back.entry.name, "b");
        c.create(&back).unwrap();
        assert_eq!(mock.unary.load(Ordering::SeqCst), 1);
    }
}
