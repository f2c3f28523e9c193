//! An administrator's hand on a running stream's ladder (`POST /api/admin/streams/{key}/quality`):
//! the number of rungs the stream's controller has, and the rung asked for since the stream last
//! looked. WebSocket mode keeps one in each stream's hub; WebRTC streams, which have no hub,
//! register theirs in [`RungControls`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// Why an administrator's rung was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RungError {
    /// The stream was opened without adaptation (its client did not ask for it, or it is in a
    /// lobby).
    #[error("this stream does not adapt its quality (its client did not ask for it)")]
    NotAdaptive,
    /// The ladder has fewer rungs.
    #[error("the stream's ladder has {0} rungs (0 is the quality asked for)")]
    NoSuchRung(usize),
}

/// One stream's ladder as the administrator sees it.
#[derive(Debug, Default)]
pub(crate) struct RungControl {
    /// 0 until the stream's controller exists (a stream that does not adapt keeps 0).
    rungs: AtomicUsize,
    forced: Mutex<Option<usize>>,
    wake: Notify,
}

impl RungControl {
    /// The stream adapts its quality over a ladder of `rungs` rungs.
    pub(crate) fn set_rungs(&self, rungs: usize) {
        self.rungs.store(rungs, Ordering::Release);
    }

    /// Asks the stream to move to rung `index` (0 = the rung its client asked for).
    pub(crate) fn force(&self, index: usize) -> Result<(), RungError> {
        match self.rungs.load(Ordering::Acquire) {
            0 => return Err(RungError::NotAdaptive),
            n if index >= n => return Err(RungError::NoSuchRung(n)),
            _ => {}
        }
        *self.forced.lock().unwrap_or_else(|p| p.into_inner()) = Some(index);
        self.wake.notify_one();
        Ok(())
    }

    /// The rung asked for since the last call.
    pub(crate) fn take(&self) -> Option<usize> {
        self.forced.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Resolves when a rung was asked for (cancel-safe: a `select!` branch).
    pub(crate) async fn asked(&self) {
        self.wake.notified().await
    }
}

/// The [`RungControl`]s of this gateway's WebRTC streams, by registry key.
#[derive(Debug, Default)]
pub struct RungControls(Mutex<HashMap<String, Weak<RungControl>>>);

impl RungControls {
    /// A new control for the stream `key`, listed until the returned guard drops (a stream that
    /// superseded another under the same key replaces its entry).
    pub(crate) fn register(self: &Arc<Self>, key: &str) -> Registered {
        let control = Arc::new(RungControl::default());
        self.lock().insert(key.to_owned(), Arc::downgrade(&control));
        Registered {
            controls: Arc::clone(self),
            key: key.to_owned(),
            control,
        }
    }

    /// The live control of the stream `key`.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<RungControl>> {
        self.lock().get(key).and_then(Weak::upgrade)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<RungControl>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A stream's entry in [`RungControls`]; dropping it removes the entry if it is still this one.
#[derive(Debug)]
pub(crate) struct Registered {
    controls: Arc<RungControls>,
    key: String,
    control: Arc<RungControl>,
}

impl std::ops::Deref for Registered {
    type Target = RungControl;
    fn deref(&self) -> &RungControl {
        &self.control
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut map = self.controls.lock();
        let ours = map
            .get(&self.key)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.control)));
        if ours {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rung_is_refused_before_the_ladder_and_beyond_it_then_taken_once() {
        let controls = Arc::new(RungControls::default());
        let reg = controls.register("s-l-c");
        let control = controls.get("s-l-c").expect("listed");
        assert_eq!(control.force(1), Err(RungError::NotAdaptive));
        reg.set_rungs(3);
        assert_eq!(control.force(3), Err(RungError::NoSuchRung(3)));
        assert_eq!(control.force(2), Ok(()));
        assert_eq!(reg.take(), Some(2));
        assert_eq!(reg.take(), None);
    }

    #[test]
    fn a_superseded_entry_stays_with_its_successor() {
        let controls = Arc::new(RungControls::default());
        let old = controls.register("k");
        let new = controls.register("k");
        drop(old);
        let listed = controls.get("k").expect("the successor's");
        assert!(std::ptr::eq(
            Arc::as_ptr(&listed),
            &*new as *const RungControl
        ));
        drop(listed);
        drop(new);
        assert!(controls.get("k").is_none());
    }
}
