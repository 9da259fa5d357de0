//! Library threads that run host handlers under a deadline, and the call
//! context that follows a call onto them.
//!
//! Threads are kept for reuse (a new OS thread per hook call cost about
//! 100 µs); a job never waits for a busy one, a new thread starts instead, so
//! handlers that block on nested calls cannot starve each other. Idle threads
//! end after a while.
//!
//! The call chain (keys held, nesting depth) follows a call onto these
//! threads, so unbounded recursion through host handlers ends with
//! RESOURCE_EXHAUSTED at [`MAX_NESTED_CALLS`] instead of a stack overflow or
//! a thread per level.

use std::cell::{Cell, RefCell};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Code, HmsError, Result};

const IDLE_LIFETIME: Duration = Duration::from_secs(30);

/// Deepest chain of calls made from inside handlers (a handler calling a
/// method whose handler calls another, ...). Each level costs stack on the
/// host's side too (a Python or Ruby frame per level), so the bound is far
/// below what the library's own frames would allow.
pub const MAX_NESTED_CALLS: u32 = 32;

/// Stack of the library's handler threads: nested calls and host frames
/// (interpreters use a lot of it) run on them.
const HANDLER_STACK_BYTES: usize = 8 << 20;

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

/// Library threads still inside a host handler or event callback whose
/// caller stopped waiting for it (see [`abandoned_threads`]).
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// Most library threads that may be left inside host code nobody waits for
/// any more; past it, deadline calls into host handlers are refused rather
/// than leaving one more thread behind.
pub const MAX_ABANDONED_THREADS: usize = 64;

/// How many library threads are still running host code that their caller
/// gave up on (a handler past its deadline, a callback of a freed runtime).
pub fn abandoned_threads() -> usize {
    ABANDONED.load(Ordering::Acquire)
}

/// Counts one more library thread left running host code.
pub fn abandon_thread() {
    ABANDONED.fetch_add(1, Ordering::AcqRel);
}

/// An abandoned thread came back from host code.
pub fn abandoned_thread_returned() {
    ABANDONED.fetch_sub(1, Ordering::AcqRel);
}

thread_local! {
    /// Keys of what the current call chain holds (e.g. "agent:<id>" while a
    /// transition of that agent runs), inherited by the handler threads it
    /// starts, so a nested call can tell it would wait for its own caller.
    static HELD: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// How many calls of this chain are running, the current one included.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Whether the library created this thread (handler and event threads).
    static LIBRARY_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as one the library created: caller-thread-only
/// handlers never run on it.
pub fn mark_library_thread() {
    LIBRARY_THREAD.with(|flag| flag.set(true));
}

pub fn on_library_thread() -> bool {
    LIBRARY_THREAD.with(Cell::get)
}

/// One level of the call chain until dropped (see [`enter_call`]).
pub struct CallLevel(());

impl Drop for CallLevel {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Counts a call into the current chain, refusing it past [`MAX_NESTED_CALLS`].
pub fn enter_call(method: &str) -> Result<CallLevel> {
    DEPTH.with(|depth| {
        let level = depth.get() + 1;
        if level > MAX_NESTED_CALLS {
            return Err(HmsError::exhausted(format!(
                "`{method}` would be call {level} of a chain of nested calls; at most \
                 {MAX_NESTED_CALLS} may nest (a handler calling itself without end?)"
            ))
            .with_detail("max_nested_calls", MAX_NESTED_CALLS));
        }
        depth.set(level);
        Ok(CallLevel(()))
    })
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
    let depth = DEPTH.with(Cell::get);
    let job: Job = Box::new(move || {
        HELD.with(|held| *held.borrow_mut() = context);
        DEPTH.with(|d| d.set(depth));
        job();
        HELD.with(|held| held.borrow_mut().clear());
        DEPTH.with(|d| d.set(0));
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
        .stack_size(HANDLER_STACK_BYTES)
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
    mark_library_thread();
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
