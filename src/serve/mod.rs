//! `papermap serve`: the library in a browser and over HTTP. A router of
//! small handlers (`api.rs`) over shared state: the current [`Snapshot`] of
//! the library, swapped for a new one when another process changes it
//! (the manifest generation or a derived file moved on), so requests never
//! wait for a writer and always see one committed state. The web page is a
//! few files compiled into the binary (`assets/`); nothing is read from
//! disk by path, so there is nothing to traverse. Read-only: every route is
//! a GET; bodies are refused; parameters are checked by the same code as
//! the command line's (`RelatedOptions::check`).

mod api;
mod pool;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::app::EmbedderKind;
use crate::app::live::{SharedEmbedder, Snapshot, Stamp};
use crate::error::{Error, Result};
use crate::index::SearchOptions;

pub use api::router;

/// Default port of `papermap serve`.
pub const DEFAULT_PORT: u16 = 8642;

/// Settings of a server, checked by [`ServeOptions::check`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub root: PathBuf,
    /// Address to listen on; loopback unless the user says otherwise.
    pub addr: SocketAddr,
    pub search: SearchOptions,
    /// HNSW search breadth (bounds as for `related --ef`).
    pub ef: usize,
    pub embedder: EmbedderKind,
    /// How often the library is checked for changes.
    pub poll: Duration,
    /// Most requests computed at once; more wait their turn. Default: the
    /// number of cores.
    pub workers: usize,
}

impl ServeOptions {
    pub fn check(&self) -> Result<()> {
        if !(1..=crate::app::MAX_EF).contains(&self.ef) {
            return Err(Error::Invalid(format!(
                "--ef must be between 1 and {} (got {})",
                crate::app::MAX_EF,
                self.ef
            )));
        }
        if !(1..=256).contains(&self.workers) {
            return Err(Error::Invalid(format!(
                "--workers must be between 1 and 256 (got {})",
                self.workers
            )));
        }
        if self.poll < Duration::from_millis(50) {
            return Err(Error::Invalid("--poll-ms must be at least 50".into()));
        }
        Ok(())
    }
}

/// What every handler shares.
pub struct State {
    opts: ServeOptions,
    current: RwLock<Arc<Snapshot>>,
    embedder: SharedEmbedder,
    topics_running: AtomicBool,
    /// The threads that compute requests (CPU-bound work), first come
    /// first served.
    work: pool::Pool,
    last_reload: std::sync::Mutex<std::time::Instant>,
}

/// Shortest time between two reopens while another papermap is writing.
pub const WRITER_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

impl State {
    /// Opens the library for serving.
    pub fn open(opts: ServeOptions) -> Result<State> {
        opts.check()?;
        let snap = Snapshot::open(&opts.root, &opts.search, opts.ef)?;
        Ok(State {
            current: RwLock::new(Arc::new(snap)),
            embedder: SharedEmbedder::new(opts.embedder),
            topics_running: AtomicBool::new(false),
            work: pool::Pool::new(opts.workers).map_err(|e| Error::io(opts.root.clone(), e))?,
            last_reload: std::sync::Mutex::new(std::time::Instant::now()),
            opts,
        })
    }

    /// The snapshot requests are answered from now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reopens the library if it changed since the current snapshot. Returns
    /// whether it did. A failed reopen keeps the current snapshot (and is
    /// returned as the error, to log); the next check tries again.
    pub fn refresh(&self) -> Result<bool> {
        let now = Stamp::read(&self.opts.root)?;
        if now == self.snapshot().stamp {
            return Ok(false);
        }
        // While a writer works, the library changes every few seconds and
        // each reopen costs CPU the writer and the requests need: reopen at
        // most every WRITER_RELOAD_INTERVAL then (at once when it is done).
        let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < WRITER_RELOAD_INTERVAL
            && crate::store::lock::active_writer(&self.opts.root).is_some()
        {
            return Ok(false);
        }
        let snap = Snapshot::open(&self.opts.root, &self.opts.search, self.opts.ef)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        *last = std::time::Instant::now();
        Ok(true)
    }

    /// Starts computing the current snapshot's topics in the background
    /// unless they are known or being computed.
    fn start_topics(self: &Arc<Self>) {
        let snap = self.snapshot();
        if snap.topics().is_some() || self.topics_running.swap(true, Ordering::SeqCst) {
            return;
        }
        let state = self.clone();
        std::thread::spawn(move || {
            snap.compute_topics();
            state.topics_running.store(false, Ordering::SeqCst);
        });
    }
}

/// Runs the server until Ctrl-C; `ready` is told the bound address (port 0
/// picks a free one).
pub fn run(opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let io = |e: std::io::Error| Error::io(opts.root.clone(), e);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    let poll = opts.poll;
    let addr = opts.addr;
    let state = Arc::new(State::open(opts.clone())?);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
        ready(listener.local_addr().map_err(io)?);
        tokio::spawn(watch(state.clone(), poll));
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(io)
    })
}

/// Checks the library for changes every `poll` and swaps in a new snapshot.
async fn watch(state: Arc<State>, poll: Duration) {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = state.clone();
        match tokio::task::spawn_blocking(move || s.refresh()).await {
            Ok(Ok(true)) => eprintln!(
                "papermap serve: library changed; now answering from generation {}",
                state.snapshot().stamp.generation
            ),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                eprintln!("papermap serve: warning: {e} (still answering from the last state)")
            }
            Err(e) => eprintln!("papermap serve: warning: reload failed: {e}"),
        }
    }
}
