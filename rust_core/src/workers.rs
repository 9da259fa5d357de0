//! Library threads that run host handlers under a deadline, and the call
//! context that follows a call onto them.
//!
//! Threads are kept for reuse (a new OS thread per hook call cost about
//! 100 µs); a job never waits for a busy one, a new thread starts instead, so
//! handlers that block on nested calls cannot starve each other. Idle threads
//! end after a while.

use std::cell::RefCell;
use std::sync::LazyLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Code, HmsError, Result};

const IDLE_LIFETIME: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce() + Send>;

struct Idle {
    id: u64,
    jobs: Sender<Job>,
}

#[derive(Default)]
struct Pool {
    idle: Mutex<(u64, Vec<Idle>)>,
}

static POOL: LazyLock<Pool> = LazyLock::new(Pool::default);

thread_local! {
    /// Keys of what the current call chain holds (e.g. "agent:<id>" while a
    /// transition of that agent runs), inherited by the handler threads it
    /// starts, so a nested call can tell it would wait for its own caller.
    static HELD: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Marks `key` as held by this call chain until the guard drops (on this thread).
pub fn hold(key: String) -> Held {
    HELD.with(|held| held.borrow_mut().push(key.clone()));
    Held { key }
}

pub fn is_held(key: &str) -> bool {
    HELD.with(|held| held.borrow().iter().any(|k| k == key))
}

pub struct Held {
    key: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|k| *k == self.key) {
                held.remove(at);
            }
        });
    }
}

/// Runs `job` on a library thread, carrying this call chain's context.
pub fn execute(job: impl FnOnce() + Send + 'static) -> Result<()> {
    let context = HELD.with(|held| held.borrow().clone());
    let job: Job = Box::new(move || {
        HELD.with(|held| *held.borrow_mut() = context);
        job();
        HELD.with(|held| held.borrow_mut().clear());
    });
    let idle = POOL.idle.lock().1.pop();
    let job = match idle {
        Some(worker) => match worker.jobs.send(job) {
            Ok(()) => return Ok(()),
            Err(returned) => returned.0,
        },
        None => job,
    };
    std::thread::Builder::new()
        .name("hms-handler".into())
        .spawn(move || worker(job))
        .map(|_| ())
        .map_err(|e| {
            HmsError::new(
                Code::ResourceExhausted,
                format!("cannot start a handler thread: {e}"),
            )
        })
}

fn worker(first: Job) {
    crate::runtime::mark_library_thread();
    first();
    loop {
        let (jobs, inbox): (Sender<Job>, Receiver<Job>) = channel();
        let id = {
            let mut idle = POOL.idle.lock();
            idle.0 += 1;
            let id = idle.0;
            idle.1.push(Idle { id, jobs });
            id
        };
        let job = match inbox.recv_timeout(IDLE_LIFETIME) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                let mut idle = POOL.idle.lock();
                match idle.1.iter().position(|w| w.id == id) {
                    Some(at) => {
                        idle.1.remove(at);
                        return;
                    }
                    // Somebody took this thread just now: its job is on the way.
                    None => {
                        drop(idle);
                        match inbox.recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        job();
    }
}
