//! A spinner on stderr while waiting for the first byte (only when stderr is a terminal).

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
/// No spinner at all for answers faster than this (avoids a flicker).
const FIRST_DRAW: Duration = Duration::from_millis(150);
const TICK: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    stopped: bool,
    drawn: bool,
    task: Option<JoinHandle<()>>,
}

/// A handle on the spinner; clones share it. [`Spinner::stop`] clears it, once, and is
/// cheap to call again.
#[derive(Clone, Default)]
pub struct Spinner {
    state: Option<Arc<Mutex<State>>>,
}

impl std::fmt::Debug for Spinner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spinner")
            .field("enabled", &self.state.is_some())
            .finish()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Spinner {
    /// Starts a spinner with `label` when `enabled` (the caller checks that stderr is a
    /// terminal); otherwise returns an inert handle. Must be called inside a Tokio runtime.
    pub fn start(enabled: bool, label: &'static str) -> Self {
        if !enabled {
            return Spinner::default();
        }
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            tokio::time::sleep(FIRST_DRAW).await;
            for frame in FRAMES.iter().cycle() {
                {
                    let mut s = lock(&shared);
                    if s.stopped {
                        return;
                    }
                    let secs = started.elapsed().as_secs_f32();
                    let mut err = std::io::stderr().lock();
                    // Drawing is best effort: a closed stderr must not stop the answer.
                    let _ = write!(err, "\r\x1b[2K{frame} {label} {secs:.1}s");
                    let _ = err.flush();
                    s.drawn = true;
                }
                tokio::time::sleep(TICK).await;
            }
        });
        lock(&state).task = Some(task);
        Spinner { state: Some(state) }
    }

    /// Stops the spinner and erases it from the line (before anything else is printed).
    pub fn stop(&self) {
        let Some(state) = &self.state else { return };
        let mut s = lock(state);
        if s.stopped {
            return;
        }
        s.stopped = true;
        if let Some(task) = s.task.take() {
            task.abort();
        }
        if s.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
