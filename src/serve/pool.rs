//! The server's compute threads: a fixed set of threads that take CPU-bound
//! requests (related papers, search, topics) from one queue, first come
//! first served. A thread that finishes a request takes the next waiting
//! one at once, without a wake-up between them, and keeps its per-thread
//! buffers (scores, visited marks) warm from request to request. Under 16
//! clients on 2 cores, `spawn_blocking` behind a semaphore left the cores
//! idle a tenth of the time while each next request was handed over.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of compute threads; dropping it lets the threads finish
/// the queued jobs and exit.
pub struct Pool {
    queue: Mutex<Sender<Job>>,
}

impl Pool {
    /// Starts `threads` compute threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("papermap-compute-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Pool {
            queue: Mutex::new(tx),
        })
    }

    /// Runs `f` on a compute thread once the jobs queued before it are
    /// taken, and returns its result; `None` if it panicked (the thread
    /// lives on) or the pool is gone. Skipped when the caller stopped
    /// waiting (a client that hung up) before its turn came.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if !tx.is_closed() {
                let _ = tx.send(f());
            }
        });
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .ok()?;
        rx.await.ok()
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while taking a job, not while running it.
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panicking request drops its sender: its caller sees `None`.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn jobs_run_in_order_and_a_panic_is_none_not_a_dead_thread() {
        let pool = Pool::new(1).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        block_on(async {
            let runs: Vec<_> = (0..20)
                .map(|i| {
                    let order = order.clone();
                    pool.run(move || {
                        order.lock().unwrap().push(i);
                        i * 2
                    })
                })
                .collect();
            let mut got = Vec::new();
            for r in runs {
                got.push(r.await);
            }
            assert_eq!(got, (0..20).map(|i| Some(i * 2)).collect::<Vec<_>>());
            assert_eq!(pool.run(|| -> u32 { panic!("bad request") }).await, None);
            assert_eq!(pool.run(|| 7).await, Some(7));
        });
        assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }
}
