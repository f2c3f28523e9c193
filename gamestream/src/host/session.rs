//! One launched session and the single path that ends it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{
    lock, AudioSender, EndReason, HostEvent, SessionEnding, Shared, StreamEvent, VideoSender,
};
use crate::input::InputWrapper;
use crate::rtsp::sdp::StreamConfig;

/// The session's media senders (its media driver runs from ANNOUNCE), handed to the application
/// at PLAY.
pub(crate) struct Prepared {
    pub(crate) video: VideoSender,
    pub(crate) audio: AudioSender,
    pub(crate) config: StreamConfig,
    pub(crate) mic: Option<crate::mic::MicReceiver>,
}

/// A launched session. Everything it owns (sockets, senders) is freed when it is dropped.
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) client_id: u64,
    pub(crate) client_ip: IpAddr,
    pub(crate) app_id: u32,
    /// The `uniqueid` of the launch request.
    pub(crate) unique_id: Option<String>,
    pub(crate) rikey: [u8; 16],
    pub(crate) rikeyid: i32,
    pub(crate) surround_audio_info: u32,
    pub(crate) rtsp_encrypted: bool,
    /// `X-SS-Ping-Payload` (16 ASCII characters), Sunshine extensions only.
    pub(crate) ping_payload: Option<String>,
    /// `X-SS-Connect-Data`, Sunshine extensions only.
    pub(crate) connect_data: Option<u32>,
    /// Media sockets, bound at `/launch` so SETUP can name their ports.
    pub(crate) video_socket: Option<std::net::UdpSocket>,
    pub(crate) audio_socket: Option<std::net::UdpSocket>,
    pub(crate) video_port: u16,
    pub(crate) audio_port: u16,
    /// The microphone socket and its port, bound at `/launch` when the host offers the mic.
    pub(crate) mic_socket: Option<std::net::UdpSocket>,
    pub(crate) mic_port: Option<u16>,
    /// The microphone's receiving task, from ANNOUNCE (stops when the session is dropped).
    pub(crate) mic_task: Option<crate::mic::driver::MicTask>,
    /// The client sent SETUP `streamid=mic`.
    pub(crate) mic_setup: bool,
    pub(crate) prepared: Option<Prepared>,
    pub(crate) streaming: bool,
    /// Decrypts input of pre-7.1.431 clients (None when the control wrapper already did).
    pub(crate) input_cipher: Option<InputWrapper>,
    pub(crate) stream_tx: Option<mpsc::UnboundedSender<StreamEvent>>,
}

/// Stable id of a client certificate (Wolf hashes the PEM; any stable hash of the certificate does,
/// since clients never see it).
pub(crate) fn client_id_of(cert_der: &[u8]) -> u64 {
    let digest = Sha256::digest(cert_der);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

/// Ends a session whatever the cause: removes it, tells its producer, tells the client when the end
/// is ours (termination before the ENet disconnect), and frees its registration once the client is
/// gone. Returns false if it was already gone.
pub(crate) fn end_session(shared: &Arc<Shared>, session_id: u64, reason: EndReason) -> bool {
    let Some(mut session) = lock(&shared.sessions).remove(&session_id) else {
        return false;
    };
    if let Some(tx) = session.stream_tx.take() {
        let _ = tx.send(StreamEvent::Ended(reason));
    }
    let client_id = session.client_id;
    drop(session);

    if let Some(observer) = &shared.config.end_observer {
        observer.session_ending(&SessionEnding {
            session_id,
            client_id,
            reason,
            control_connected: shared.control.is_connected(session_id),
        });
    }

    let ours = matches!(
        reason,
        EndReason::Cancelled | EndReason::Superseded | EndReason::Stopped | EndReason::HostShutdown
    );
    let runtime = tokio::runtime::Handle::try_current();
    match runtime {
        Ok(rt) if ours && shared.control.is_connected(session_id) => {
            let _ = shared.control.disconnect(session_id);
            let weak = Arc::downgrade(shared);
            rt.spawn(async move {
                // The termination and disconnect go out first; the registration (which they need)
                // is dropped when the client has gone, or after 2 s.
                for _ in 0..40 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    match weak.upgrade() {
                        Some(s) if s.control.is_connected(session_id) => continue,
                        _ => break,
                    }
                }
                if let Some(s) = weak.upgrade() {
                    s.control.unregister(session_id);
                }
            });
        }
        _ => shared.control.unregister(session_id),
    }
    let _ = shared
        .events
        .send(HostEvent::SessionEnded { session_id, reason });
    true
}

/// A control peer left a session of a host whose disconnects pause ([`super::HostConfig::disconnect_pauses`]):
/// its producer is told the stream ended (the media stops and its sockets can go), while the
/// session itself stays listed, and the client stays busy, until it is ended for real.
pub(crate) fn pause_session(shared: &Shared, session_id: u64) {
    let tx = {
        let mut sessions = lock(&shared.sessions);
        // `streaming` stays set: a paused session is never matched to a new RTSP handshake.
        let Some(session) = sessions.get_mut(&session_id) else {
            return;
        };
        session.stream_tx.take()
    };
    tracing::info!(
        session = session_id,
        "control peer gone: session paused until /cancel"
    );
    if let Some(tx) = tx {
        let _ = tx.send(StreamEvent::Ended(EndReason::ClientDisconnected));
    }
}

/// Sends an event to the session's producer, if the stream has started.
pub(crate) fn forward(shared: &Shared, session_id: u64, event: StreamEvent) {
    if let Some(tx) = lock(&shared.sessions)
        .get(&session_id)
        .and_then(|s| s.stream_tx.as_ref())
    {
        let _ = tx.send(event);
    }
}
