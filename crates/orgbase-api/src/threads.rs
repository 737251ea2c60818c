//! Serving on several threads (`http_threads`), each a single-threaded runtime of its own that
//! keeps the connections it is given from their first byte to their last.
//!
//! By default one runtime's workers share every task: a request that waits on the database is
//! woken by whichever worker read the answer and finishes there, its state (a few kilobytes of
//! nested futures, allocated on the worker that read the request) read and freed on another
//! core. For the access check on PostgreSQL that cost 28 µs of the server's CPU a check against
//! 16 answered on its own thread (two cores at saturation, `bench/README.md`, session 25), and
//! requests answered at once gain too: no stealing of tasks between workers. What it costs: a
//! request handed to a task on another thread (the settings batch writer, one per node) waits
//! for that thread to be scheduled, where one runtime runs the task it woke next, on the same
//! worker; PostgreSQL's batched settings writes ran 12-15 % slower so. Hence a setting, not the
//! default.
//!
//! One task on the caller's runtime accepts every connection and deals them out in turn, so each
//! thread gets the same share (the kernel's `SO_REUSEPORT` would spread them by a hash of the
//! addresses, unevenly for a few long-lived connections, and would let a second process bind the
//! same port unnoticed). The caller's runtime serves one share itself.
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A connection accepted on one thread, to be served on another.
type Accepted = (std::net::TcpStream, SocketAddr);

/// The serving threads, kept until [`Threads::finish`]: work a request left running (a write's
/// after-commit notice, a webhook's delivery) goes on until then.
pub struct Threads {
    keep: Vec<oneshot::Sender<()>>,
    joins: Vec<std::thread::JoinHandle<()>>,
}

impl Threads {
    /// Stops the threads' runtimes (what still runs on them gets a second to finish) and
    /// waits for the threads.
    pub fn finish(self) {
        drop(self.keep);
        for j in self.joins {
            let _ = j.join();
        }
    }
}

/// Serves `app` on `threads` threads (the caller's runtime and `threads - 1` more) until
/// `shutdown` is cancelled and every connection has finished, as [`crate::serve_app`] does on
/// one.
pub async fn serve_threads(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    threads: NonZeroUsize,
) -> std::io::Result<Threads> {
    let local = listener.local_addr()?;
    let mut shares = Vec::with_capacity(threads.get());
    let mut keep = Vec::new();
    let mut joins = Vec::new();
    let mut results = Vec::new();
    let (own_share, own_rx) = mpsc::unbounded_channel();
    shares.push(own_share);
    for i in 1..threads.get() {
        let (share, rx) = mpsc::unbounded_channel();
        shares.push(share);
        let (done, result) = oneshot::channel();
        let (keep_tx, keep_rx) = oneshot::channel::<()>();
        let app = app.clone();
        let shutdown = shutdown.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        joins.push(
            std::thread::Builder::new()
                .name(format!("orgbase-http-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let served = serve_share(rx, local, app, shutdown).await;
                        let _ = done.send(served);
                        let _ = keep_rx.await;
                    });
                    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
                })?,
        );
        results.push(result);
        keep.push(keep_tx);
    }
    let dealer = tokio::spawn(deal(listener, shares, shutdown.clone()));
    let served = serve_share(own_rx, local, app, shutdown).await;
    let _ = dealer.await;
    let threads = Threads { keep, joins };
    served?;
    for r in results {
        r.await
            .map_err(|_| std::io::Error::other("a serving thread stopped"))??;
    }
    Ok(threads)
}

/// Accepts until `shutdown`, handing each connection to the next thread in turn.
async fn deal(
    mut listener: TcpListener,
    shares: Vec<mpsc::UnboundedSender<Accepted>>,
    shutdown: CancellationToken,
) {
    let mut next = 0;
    loop {
        // axum's accept retries by itself after an error (a full table of open files, say).
        let (stream, addr) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "an accepted connection could not be handed over");
                continue;
            }
        };
        // A thread that stopped (it cannot, short of a panic) passes its turn to the next.
        let mut given = Some((stream, addr));
        for _ in 0..shares.len() {
            let share = &shares[next];
            next = (next + 1) % shares.len();
            match share.send(given.take().expect("not sent yet")) {
                Ok(()) => break,
                Err(mpsc::error::SendError(back)) => given = Some(back),
            }
        }
    }
}

/// Serves the connections handed to this thread, as `axum::serve` serves a listener's.
async fn serve_share(
    rx: mpsc::UnboundedReceiver<Accepted>,
    local: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        Share { rx, local }.tap_io(|_| {}),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

/// The connections dealt to one thread, as a listener.
struct Share {
    rx: mpsc::UnboundedReceiver<Accepted>,
    local: SocketAddr,
}

impl axum::serve::Listener for Share {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((stream, addr)) = self.rx.recv().await else {
                // The dealer stopped (shutdown): nothing more comes.
                return std::future::pending().await;
            };
            // Registered with this thread's runtime, where it stays.
            match TcpStream::from_std(stream) {
                Ok(s) => return (s, addr),
                Err(e) => {
                    tracing::warn!(error = %e, "a handed-over connection could not be served")
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
