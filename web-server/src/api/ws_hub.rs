//! A WebSocket-mode stream shared by several browser connections (docs/browser-protocol.md §8).
//!
//! One [`Hub`] per stream: the owner's connection task runs the stream (streamer, IPC, teardown)
//! and hands each media message to the hub, which copies it (a reference-counted `Bytes`) into
//! every member's own bounded queue. A slow member's queue drops its video up to the next
//! keyframe and asks for one; nobody else waits. The roster ([`Roster`]) decides whose input
//! reaches the host. Members join through [`Watches`] with the stream's id and join token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use bytes::Bytes;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, watch, Notify};
use wire::backpressure::QueueStats;
use wire::browser::{self, ClientControl, StreamInit};

use super::ws_member::{Leave, Outbox};
use crate::stream::adapt::{RungControl, RungError};
use crate::stream::roster::{MemberId, Roster, RosterError};
use crate::stream::Close;

/// Input waiting for the stream task; the reader waits when it is full (backpressure).
const INPUT_QUEUE: usize = 256;
/// The most members one stream has (owner included): each costs a queue and a socket's sends.
pub(crate) const MAX_MEMBERS: usize = 32;
/// A member whose input is dropped is told so at most this often.
const REFUSED_NOTICE_EVERY: Duration = Duration::from_secs(2);

/// Why a viewer could not join.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinError {
    /// The stream ended meanwhile.
    Ended,
    /// It has [`MAX_MEMBERS`] members.
    Full,
}

/// The streams on this gateway that can be watched, by stream id (the registry key).
#[derive(Default)]
pub struct Watches(Mutex<HashMap<String, Weak<Hub>>>);

impl Watches {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Weak<Hub>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stream `stream` if `token` is its join token (compared in constant time).
    pub(crate) fn find(&self, stream: &str, token: &str) -> Option<Arc<Hub>> {
        let hub = self.get(stream)?;
        bool::from(hub.token.as_bytes().ct_eq(token.as_bytes())).then_some(hub)
    }

    /// The stream `stream`, for the admin.
    pub(crate) fn get(&self, stream: &str) -> Option<Arc<Hub>> {
        self.map().get(stream).and_then(Weak::upgrade)
    }

    fn remove(&self, stream: &str, hub: &Hub) {
        let mut map = self.map();
        if map
            .get(stream)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), hub))
        {
            map.remove(stream);
        }
    }
}

struct Attached {
    outbox: Arc<Outbox>,
    /// A Helix-protocol client: the core StreamInit and no ControllerEvent.
    helix: bool,
    video_enabled: bool,
    refused_at: Option<Instant>,
    /// ConnectionComplete goes once per member; StreamInit with every (re)start.
    complete_sent: bool,
}

#[derive(Default)]
struct Shared {
    roster: Roster,
    members: HashMap<MemberId, Attached>,
    /// What a member joining after the start is sent first.
    started: Option<StreamInit>,
    closed: bool,
}

/// One shared stream's members and their queues.
pub(crate) struct Hub {
    key: String,
    token: String,
    owner: MemberId,
    shared: Mutex<Shared>,
    watches: Arc<Watches>,
    inputs: mpsc::Sender<Bytes>,
    /// Wakes the stream task: a keyframe is wanted, or the last member left.
    pub(crate) wake: Notify,
    want_keyframe: AtomicBool,
    /// The quality ladder's length and a rung an administrator asked for.
    rungs: RungControl,
    all_left: Mutex<Option<Leave>>,
    ended: watch::Sender<bool>,
    metrics: Arc<crate::metrics::Metrics>,
    max_message_bytes: usize,
}

#[derive(Serialize)]
struct Share<'a> {
    stream: &'a str,
    token: &'a str,
}

/// What the stream task gets of a hub: the input of whoever holds control.
pub(crate) type Inputs = mpsc::Receiver<Bytes>;

impl Hub {
    /// A stream with its owner as first member (in control); registered for watching.
    pub(crate) fn open(
        state: &crate::state::AppState,
        key: &str,
        owner_name: &str,
        outbox: Arc<Outbox>,
        helix: bool,
    ) -> (Arc<Hub>, MemberId, Inputs) {
        let (roster, owner) = Roster::new(owner_name);
        let mut members = HashMap::new();
        members.insert(owner, Attached::new(outbox, helix));
        let (inputs, rx) = mpsc::channel(INPUT_QUEUE);
        let token: String = rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let hub = Arc::new(Hub {
            key: key.to_string(),
            token,
            owner,
            shared: Mutex::new(Shared {
                roster,
                members,
                ..Shared::default()
            }),
            watches: Arc::clone(&state.watches),
            inputs,
            wake: Notify::new(),
            want_keyframe: AtomicBool::new(false),
            rungs: RungControl::default(),
            all_left: Mutex::new(None),
            ended: watch::channel(false).0,
            metrics: Arc::clone(&state.metrics),
            max_message_bytes: state.config.limits.max_message_bytes,
        });
        state
            .watches
            .map()
            .insert(key.to_string(), Arc::downgrade(&hub));
        hub.send_roster(&hub.lock());
        (hub, owner, rx)
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fires when the stream ends: a member's reader stops.
    pub(crate) fn ended(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }

    /// The close for a member whose message was over the size limit.
    pub(crate) fn too_big(&self) -> Close {
        Close::too_big_counted(&self.metrics, self.max_message_bytes)
    }

    /// A viewer joins: StreamInit and ConnectionComplete if the stream has started, the roster,
    /// and a keyframe asked for.
    pub(crate) fn join(&self, name: &str, outbox: Arc<Outbox>) -> Result<MemberId, JoinError> {
        let mut shared = self.lock();
        if shared.closed {
            return Err(JoinError::Ended);
        }
        if shared.members.len() >= MAX_MEMBERS {
            return Err(JoinError::Full);
        }
        let id = shared.roster.join(name);
        let mut member = Attached::new(outbox, false);
        if let Some(init) = &shared.started {
            member.send_started(init);
        }
        shared.members.insert(id, member);
        self.send_roster(&shared);
        drop(shared);
        tracing::info!(session = %self.key, member = id, "a viewer joined the stream");
        self.keyframe();
        Ok(id)
    }

    /// A member leaves. The last one to leave ends the stream, for the reason given.
    pub(crate) fn leave(&self, id: MemberId, why: Leave) {
        let mut shared = self.lock();
        if shared.members.remove(&id).is_none() {
            return;
        }
        let last = shared.roster.leave(id);
        if !last {
            self.send_roster(&shared);
        }
        drop(shared);
        tracing::info!(session = %self.key, member = id, ?why, last, "a member left the stream");
        if last {
            *self.all_left.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            self.wake.notify_one();
        }
    }

    /// Once the last member has left: why.
    pub(crate) fn take_all_left(&self) -> Option<Leave> {
        self.all_left
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn keyframe(&self) {
        self.want_keyframe.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// A keyframe was asked for since the last call.
    pub(crate) fn take_keyframe(&self) -> bool {
        self.want_keyframe.swap(false, Ordering::AcqRel)
    }

    /// A message from member `id`: control JSON is acted on here; input goes to the stream task
    /// if `id` holds control, else it is dropped and the member told why.
    pub(crate) async fn input(&self, id: MemberId, data: Bytes) {
        let Some(&ty) = data.first() else { return };
        if !browser::msg_type::is_forwarded_input(ty) {
            return;
        }
        if ty == browser::msg_type::CONTROL_MESSAGE {
            self.control(id, &data);
            return;
        }
        if self.lock().roster.may_input(id) {
            // Closed only when the stream task is gone; the reader ends with the stream.
            let _ = self.inputs.send(data).await;
        } else {
            self.refuse_input(id);
        }
    }

    fn refuse_input(&self, id: MemberId) {
        let mut shared = self.lock();
        let Some(member) = shared.members.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        if member
            .refused_at
            .is_some_and(|at| now.duration_since(at) < REFUSED_NOTICE_EVERY)
        {
            return;
        }
        member.refused_at = Some(now);
        let json = serde_json::json!({"InputRefused": {
            "reason": "another viewer has control of this stream; ask for it to use your keyboard, mouse or gamepad"
        }});
        member
            .outbox
            .control(Message::Text(json.to_string().into()));
    }

    fn control(&self, id: MemberId, data: &[u8]) {
        let Ok(browser::Message::Control(json)) = browser::Message::decode(data) else {
            return;
        };
        let Ok(control) = ClientControl::parse(json) else {
            return;
        };
        let mut shared = self.lock();
        let changed = match control {
            ClientControl::SetVideoEnabled(on) => {
                let Some(member) = shared.members.get_mut(&id) else {
                    return;
                };
                let was = std::mem::replace(&mut member.video_enabled, on);
                if on && !was {
                    // The queue waits for a keyframe and asks for one itself.
                    member.outbox.queue().reset_video(Instant::now());
                    drop(shared);
                    self.keyframe();
                }
                return;
            }
            ClientControl::RequestControl => shared.roster.request(id),
            ClientControl::GrantControl(to) => shared.roster.grant(id, to),
            ClientControl::ReleaseControl => shared.roster.release(id),
            ClientControl::SetBatchingEnabled(_) | ClientControl::Unknown => return,
        };
        match changed {
            Ok(()) => self.send_roster(&shared),
            Err(e) => {
                tracing::debug!(session = %self.key, member = id, "control change refused: {e}");
            }
        }
    }

    /// The admin gives control to `to`, or to nobody.
    pub(crate) fn force_control(&self, to: Option<MemberId>) -> Result<(), RosterError> {
        let mut shared = self.lock();
        shared.roster.force(to)?;
        self.send_roster(&shared);
        drop(shared);
        tracing::info!(session = %self.key, controller = ?to, "control set by an admin");
        Ok(())
    }

    /// How many members watch now.
    pub(crate) fn member_count(&self) -> usize {
        self.lock().members.len()
    }

    fn send_roster(&self, shared: &Shared) {
        for (&id, member) in &shared.members {
            let mut view = serde_json::json!(shared.roster.view(id));
            if id == self.owner {
                view["share"] = serde_json::json!(Share {
                    stream: &self.key,
                    token: &self.token,
                });
            }
            let json = serde_json::json!({ "Viewers": view });
            member
                .outbox
                .control(Message::Text(json.to_string().into()));
        }
    }

    /// The stream started (or restarted): every member gets StreamInit and ConnectionComplete,
    /// and its video waits for a keyframe.
    pub(crate) fn started(&self, init: StreamInit) {
        let mut shared = self.lock();
        for member in shared.members.values_mut() {
            member.send_started(&init);
        }
        shared.started = Some(init);
    }

    /// A video message for every member that wants video; true if a member's queue asks for a
    /// keyframe (it dropped frames and waits for one).
    pub(crate) fn video(&self, msg: &Bytes, keyframe: bool, now: Instant) -> bool {
        let shared = self.lock();
        let mut wanted = false;
        for member in shared.members.values().filter(|m| m.video_enabled) {
            let mut q = member.outbox.queue();
            q.push_video(Message::Binary(msg.clone()), msg.len(), keyframe, now);
            wanted |= q.take_keyframe_request(now);
            drop(q);
            member.outbox.wake.notify_one();
        }
        wanted
    }

    /// An audio message for every member.
    pub(crate) fn audio(&self, msg: &Bytes, now: Instant) {
        for member in self.lock().members.values() {
            member
                .outbox
                .queue()
                .push_audio(Message::Binary(msg.clone()), msg.len(), now);
            member.outbox.wake.notify_one();
        }
    }

    /// A ControllerEvent (rumble) for every member that understands it.
    pub(crate) fn rumble(&self, msg: &Bytes) {
        for member in self.lock().members.values().filter(|m| !m.helix) {
            member.outbox.control(Message::Binary(msg.clone()));
        }
    }

    /// A member's queue is due to ask for a keyframe again (its first one was lost).
    pub(crate) fn keyframe_retry_due(&self, now: Instant) -> bool {
        let shared = self.lock();
        let mut due = false;
        for member in shared.members.values() {
            due |= member.outbox.queue().take_keyframe_request(now);
        }
        due
    }

    /// The owner's link (its queue's counters and the last round trip), while it is a member:
    /// what the quality controller follows. A viewer's link never lowers the stream for
    /// everyone; its own queue drops frames instead.
    /// `take_rtt`: the round trip is handed out once per pong.
    pub(crate) fn owner_link(
        &self,
        now: Instant,
        take_rtt: bool,
    ) -> Option<(QueueStats, Option<u32>)> {
        let shared = self.lock();
        let owner = shared.members.get(&self.owner)?;
        let stats = owner.outbox.queue().stats(now);
        let rtt = take_rtt.then(|| owner.outbox.take_rtt_ms()).flatten();
        Some((stats, rtt))
    }

    /// The stream adapts its quality over a ladder of `rungs` rungs.
    pub(crate) fn set_rungs(&self, rungs: usize) {
        self.rungs.set_rungs(rungs);
    }

    /// An administrator moves the stream to rung `index` (0 = the rung asked for); the stream's
    /// pump wakes on the hub's own notify.
    pub(crate) fn force_rung(&self, index: usize) -> Result<(), RungError> {
        self.rungs.force(index)?;
        self.wake.notify_one();
        Ok(())
    }

    /// The rung an administrator asked for since the last call.
    pub(crate) fn take_forced_rung(&self) -> Option<usize> {
        self.rungs.take()
    }

    /// The rung changed: members that speak moongate's protocol are told (the web client shows
    /// it); the new StreamInit follows with the restarted stream.
    pub(crate) fn quality(&self, json: &str) {
        for member in self.lock().members.values().filter(|m| !m.helix) {
            member
                .outbox
                .control(Message::Text(json.to_string().into()));
        }
    }

    /// The owner's queue, else the first member's: what the admin view shows.
    pub(crate) fn queue_stats(&self, now: Instant) -> Option<QueueStats> {
        let shared = self.lock();
        let member = shared
            .members
            .get(&self.owner)
            .or_else(|| shared.members.values().next())?;
        let stats = member.outbox.queue().stats(now);
        Some(stats)
    }

    /// The stream is over: nobody joins any more, every member but the owner (whose connection
    /// closes with the stream's own close) is sent `close`, and every reader stops.
    pub(crate) fn close_all(&self, close: &Close) {
        let mut shared = self.lock();
        shared.closed = true;
        for (&id, member) in &shared.members {
            if id != self.owner {
                member.outbox.close(close);
            }
        }
        drop(shared);
        self.watches.remove(&self.key, self);
        self.ended.send_replace(true);
    }
}

impl Attached {
    fn new(outbox: Arc<Outbox>, helix: bool) -> Self {
        Attached {
            outbox,
            helix,
            video_enabled: true,
            refused_at: None,
            complete_sent: false,
        }
    }

    /// StreamInit, then ConnectionComplete; video waits for the next keyframe (a decoder is
    /// configured asynchronously and may miss the first IDR, contract §4.1).
    fn send_started(&mut self, init: &StreamInit) {
        let mut init = *init;
        if self.helix {
            init.opus = None;
        }
        let complete = browser::connection_complete_json(
            init.touch_supported,
            u32::from(init.width),
            u32::from(init.height),
        );
        if let Ok(si) = browser::Message::StreamInit(init).to_vec() {
            self.outbox.control(Message::Binary(si.into()));
        }
        if !std::mem::replace(&mut self.complete_sent, true) {
            self.outbox.control(Message::Text(complete.into()));
        }
        self.outbox.queue().reset_video(Instant::now());
    }
}
