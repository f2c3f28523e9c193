//! Our control client against our control server on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use gamestream::control::client::DisconnectReason;
use gamestream::control::{
    channel, ClientEvent, ClientMessage, ControlClient, ControlConfig, ControlServer, HostEvent,
    HostMessage, InputRoute, IvStyle, SessionMatch, TerminationReason,
};
use gamestream::AppVersion;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(5);

async fn server() -> (ControlServer, UnboundedReceiver<(u64, HostEvent)>) {
    ControlServer::bind(SocketAddr::new(LOCALHOST, 0))
        .await
        .unwrap()
}

/// What host and client agree on for one test session.
#[derive(Clone, Copy)]
struct Session {
    id: u64,
    key: [u8; 16],
    iv_style: IvStyle,
    version: AppVersion,
}

impl Session {
    fn new(id: u64, iv_style: IvStyle, version: AppVersion) -> Self {
        Session {
            id,
            key: KEY,
            iv_style,
            version,
        }
    }

    /// Registers the session on `srv`, matched by `connect_data` and/or the client's `peer_ip`.
    fn register(&self, srv: &ControlServer, connect_data: Option<u32>, peer_ip: Option<IpAddr>) {
        let by = SessionMatch {
            connect_data,
            peer_ip,
        };
        srv.register(self.id, by, self.key, self.iv_style, self.version);
    }

    /// The config of a client that presents `connect_data`.
    fn client_config(&self, connect_data: u32) -> ControlConfig {
        ControlConfig::new(connect_data, self.key, self.iv_style, self.version)
    }

    /// A client connected to `srv` presenting `connect_data`.
    async fn connect(
        &self,
        srv: &ControlServer,
        connect_data: u32,
    ) -> (ControlClient, UnboundedReceiver<ClientEvent>) {
        let cfg = self.client_config(connect_data);
        ControlClient::connect(srv.local_addr(), cfg).await.unwrap()
    }
}

/// Waits for the first host event of `session` that `pred` accepts (bounded by WAIT).
async fn host_wait(
    rx: &mut UnboundedReceiver<(u64, HostEvent)>,
    session: u64,
    pred: impl Fn(&HostEvent) -> bool,
) -> HostEvent {
    timeout(WAIT, async {
        loop {
            let (id, ev) = rx.recv().await.expect("server events ended");
            if id == session && pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("timed out waiting for host event")
}

/// Waits for the client's `Disconnected` event and checks its reason.
async fn client_disconnected(rx: &mut UnboundedReceiver<ClientEvent>, reason: DisconnectReason) {
    let ev = client_wait(rx, |e| matches!(e, ClientEvent::Disconnected { .. })).await;
    assert_eq!(ev, ClientEvent::Disconnected { reason });
}

async fn client_wait(
    rx: &mut UnboundedReceiver<ClientEvent>,
    pred: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    timeout(WAIT, async {
        loop {
            let ev = rx.recv().await.expect("client events ended");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("timed out waiting for client event")
}

async fn full_session(iv_style: IvStyle) {
    let (srv, mut hev) = server().await;
    let session = Session::new(7, iv_style, AppVersion::SUNSHINE);
    session.register(&srv, Some(0xABCD), None);
    assert!(srv.last_activity(7).is_some());

    let (client, mut cev) = session.connect(&srv, 0xABCD).await;
    assert_eq!(
        client_wait(&mut cev, |_| true).await,
        ClientEvent::Connected
    );

    let ev = host_wait(&mut hev, 7, |e| matches!(e, HostEvent::Connected { .. })).await;
    assert!(
        matches!(ev, HostEvent::Connected { peer } if peer == client.local_addr() || peer.port() == client.local_addr().port())
    );
    // Start A is the IDR request on >= 7.1.431; then Start B; then pings.
    assert_eq!(
        host_wait(&mut hev, 7, |_| true).await,
        HostEvent::IdrRequest
    );
    assert_eq!(
        host_wait(&mut hev, 7, |_| true).await,
        HostEvent::Message(ClientMessage::StartB)
    );
    assert_eq!(host_wait(&mut hev, 7, |_| true).await, HostEvent::Ping);
    assert_eq!(host_wait(&mut hev, 7, |_| true).await, HostEvent::Ping);
    assert!(srv.is_connected(7));

    client.request_idr().unwrap();
    host_wait(&mut hev, 7, |e| *e == HostEvent::IdrRequest).await;
    client.invalidate_refs(10, 12).unwrap();
    host_wait(&mut hev, 7, |e| {
        *e == HostEvent::Rfi {
            first: 10,
            last: 12,
        }
    })
    .await;
    let key_down = hex::decode("0000000a03000000004100000000").unwrap();
    client
        .send_input(key_down.clone(), InputRoute::reliable(channel::KEYBOARD))
        .unwrap();
    let pad = vec![0, 0, 0, 8, 7, 0, 0, 0, 0, 1, 0xFF, 0xFF];
    client
        .send_input(pad.clone(), InputRoute::unreliable(channel::gamepad(2)))
        .unwrap();
    let want = HostEvent::Input {
        bytes: key_down,
        legacy_encrypted: false,
    };
    host_wait(&mut hev, 7, |e| *e == want).await;
    let want = HostEvent::Input {
        bytes: pad,
        legacy_encrypted: false,
    };
    host_wait(&mut hev, 7, |e| *e == want).await;

    srv.send(
        7,
        HostMessage::Rumble {
            controller: 1,
            low_freq: 100,
            high_freq: 200,
        },
    )
    .unwrap();
    let ev = client_wait(&mut cev, |e| matches!(e, ClientEvent::Rumble { .. })).await;
    assert_eq!(
        ev,
        ClientEvent::Rumble {
            controller: 1,
            low_freq: 100,
            high_freq: 200
        }
    );
    srv.send(
        7,
        HostMessage::HdrMode {
            enabled: true,
            metadata: None,
        },
    )
    .unwrap();
    let ev = client_wait(&mut cev, |e| matches!(e, ClientEvent::Hdr { .. })).await;
    assert!(matches!(ev, ClientEvent::Hdr { enabled: true, .. }));

    // Host ends the stream: graceful once a frame was seen.
    client.note_frame_seen(42);
    srv.disconnect(7).unwrap();
    let ev = client_wait(&mut cev, |e| matches!(e, ClientEvent::Termination { .. })).await;
    assert!(
        matches!(
            ev,
            ClientEvent::Termination {
                reason: TerminationReason::Graceful,
                ..
            }
        ),
        "{ev:?}"
    );
    let ev = client_wait(&mut cev, |_| true).await;
    assert_eq!(
        ev,
        ClientEvent::Disconnected {
            reason: DisconnectReason::Terminated
        }
    );
    host_wait(&mut hev, 7, |e| *e == HostEvent::Disconnected).await;
    assert!(
        client.request_idr().is_err(),
        "driver must be gone after termination"
    );
    client.close().await; // no-op after the end
    srv.close().await;
}

#[tokio::test]
async fn session_with_v2_iv() {
    full_session(IvStyle::V2).await;
}

#[tokio::test]
async fn session_with_nvidia_iv() {
    full_session(IvStyle::Nvidia).await;
}

#[tokio::test]
async fn client_close_reaches_host() {
    let (srv, mut hev) = server().await;
    let session = Session::new(1, IvStyle::Nvidia, AppVersion::SUNSHINE);
    session.register(&srv, None, Some(LOCALHOST));
    let (client, mut cev) = session.connect(&srv, 0).await;
    host_wait(&mut hev, 1, |e| matches!(e, HostEvent::Connected { .. })).await;
    let before = srv.last_activity(1).unwrap();
    host_wait(&mut hev, 1, |e| *e == HostEvent::Ping).await;
    assert!(srv.last_activity(1).unwrap() >= before);
    timeout(WAIT, client.close())
        .await
        .expect("close must finish within the linger");
    client_disconnected(&mut cev, DisconnectReason::Closed).await;
    host_wait(&mut hev, 1, |e| *e == HostEvent::Disconnected).await;
    assert!(!srv.is_connected(1));
    srv.close().await;
}

#[tokio::test]
async fn unknown_session_is_refused() {
    let (srv, mut hev) = server().await;
    let session = Session::new(1, IvStyle::V2, AppVersion::SUNSHINE);
    session.register(&srv, Some(5), None);
    let cfg = session.client_config(6);
    // ENet completes the handshake, then the server disconnects the peer at once.
    match ControlClient::connect(srv.local_addr(), cfg).await {
        Err(_) => {}
        Ok((_client, mut cev)) => {
            let ev = client_wait(&mut cev, |e| matches!(e, ClientEvent::Disconnected { .. })).await;
            assert!(
                matches!(
                    ev,
                    ClientEvent::Disconnected {
                        reason: DisconnectReason::Peer { .. }
                    }
                ),
                "{ev:?}"
            );
        }
    }
    assert!(!srv.is_connected(1));
    assert!(hev.try_recv().is_err(), "no event for an unknown peer");
    assert!(srv
        .send(
            99,
            HostMessage::Termination(gamestream::control::Termination::server_closed())
        )
        .is_err());
    srv.close().await;
}

#[tokio::test]
async fn two_sessions_from_one_ip_by_connect_data() {
    let (srv, mut hev) = server().await;
    let first = Session::new(100, IvStyle::V2, AppVersion::SUNSHINE);
    let second = Session {
        id: 200,
        key: [9u8; 16],
        ..first
    };
    first.register(&srv, Some(1), Some(LOCALHOST));
    second.register(&srv, Some(2), Some(LOCALHOST));
    let (c2, _e2) = second.connect(&srv, 2).await;
    let (c1, _e1) = first.connect(&srv, 1).await;
    c1.send_input(vec![1, 1], InputRoute::reliable(channel::MOUSE))
        .unwrap();
    c2.send_input(vec![2, 2], InputRoute::reliable(channel::MOUSE))
        .unwrap();
    // Each session decrypts with its own key, so delivered bytes prove the binding.
    let mut seen = (false, false);
    timeout(WAIT, async {
        while !(seen.0 && seen.1) {
            match hev.recv().await.unwrap() {
                (100, HostEvent::Input { bytes, .. }) => {
                    assert_eq!(bytes, vec![1, 1]);
                    seen.0 = true;
                }
                (200, HostEvent::Input { bytes, .. }) => {
                    assert_eq!(bytes, vec![2, 2]);
                    seen.1 = true;
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(srv.is_connected(100) && srv.is_connected(200));
    c1.close().await;
    c2.close().await;
    srv.close().await;
}

#[tokio::test]
async fn legacy_generation_uses_v1_rfi_and_loss_stats() {
    let (srv, mut hev) = server().await;
    let session = Session::new(3, IvStyle::Nvidia, AppVersion::parse("7.1.402.0"));
    session.register(&srv, None, Some(LOCALHOST));
    let (client, _cev) = session.connect(&srv, 0).await;
    assert_eq!(
        host_wait(&mut hev, 3, |e| !matches!(e, HostEvent::Connected { .. })).await,
        HostEvent::Message(ClientMessage::StartA)
    );
    assert_eq!(
        host_wait(&mut hev, 3, |_| true).await,
        HostEvent::Message(ClientMessage::StartB)
    );
    client.note_frame_complete(9);
    host_wait(&mut hev, 3, |e| {
        matches!(
            e,
            HostEvent::Message(ClientMessage::LossStats {
                last_good_frame: 9,
                ..
            })
        )
    })
    .await;
    client.note_frame_seen(0x100);
    client.request_idr().unwrap();
    host_wait(&mut hev, 3, |e| {
        *e == HostEvent::Rfi {
            first: 0xE0,
            last: 0x100,
        }
    })
    .await;
    client
        .send_input(
            vec![0, 0, 0, 0x1e, 0xAA],
            InputRoute::reliable(channel::KEYBOARD),
        )
        .unwrap();
    let want = HostEvent::Input {
        bytes: vec![0, 0, 0, 0x1e, 0xAA],
        legacy_encrypted: true,
    };
    host_wait(&mut hev, 3, |e| *e == want).await;
    client.close().await;
    srv.close().await;
}

#[tokio::test]
async fn dropping_handles_stops_drivers() {
    let (srv, mut hev) = server().await;
    let session = Session::new(4, IvStyle::V2, AppVersion::SUNSHINE);
    session.register(&srv, Some(4), None);
    let (client, mut cev) = session.connect(&srv, 4).await;
    host_wait(&mut hev, 4, |e| matches!(e, HostEvent::Connected { .. })).await;
    drop(client);
    client_disconnected(&mut cev, DisconnectReason::Closed).await;
    // The client's event channel closes: its driver task has ended.
    assert!(timeout(WAIT, cev.recv()).await.unwrap().is_none());
    host_wait(&mut hev, 4, |e| *e == HostEvent::Disconnected).await;
    drop(srv);
    assert!(
        timeout(WAIT, async { while hev.recv().await.is_some() {} })
            .await
            .is_ok(),
        "server driver must end on drop"
    );
}
