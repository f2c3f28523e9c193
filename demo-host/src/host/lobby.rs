//! Lobby handling: creating lobbies, sessions joining and leaving them (switching the session's
//! producer to the lobby's shared one and back) and stopping them. Kept apart from `host.rs`
//! because it is the one part of the host that moves sessions between producers.

use super::*;

pub(super) fn create_lobby(inner: &Arc<Inner>, settings: LobbySettings) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let mut state = lock(&inner.state);
    state.looks += 1;
    let look = Look::nth(state.looks, settings.name.clone());
    let (cmds, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(producer::run_lobby(
        Arc::clone(&inner.config.media),
        inner.config.source_kind,
        inner.config.wolf_strict,
        look.clone(),
        rx,
    ));
    state.lobbies.insert(
        id.clone(),
        LobbyEntry {
            info: LobbyInfo {
                id: id.clone(),
                name: settings.name.clone(),
                multi_user: settings.multi_user,
                stop_when_everyone_leaves: settings.stop_when_everyone_leaves,
                has_pin: settings.pin.is_some(),
                video: settings.video,
                audio_channels: settings.audio_channels,
                members: Vec::new(),
                color: look.style.color,
            },
            pin: settings.pin,
            cmds,
            task,
        },
    );
    drop(state);
    tracing::info!(lobby = %id, name = %settings.name, "lobby created");
    emit(
        inner,
        DemoEvent::LobbyCreated {
            lobby_id: id.clone(),
            name: settings.name,
        },
    );
    id
}

pub(super) fn join_lobby(
    inner: &Arc<Inner>,
    lobby_id: &str,
    session_id: u64,
    pin: Option<&[u8]>,
) -> Result<(), ApiError> {
    let previous = {
        let state = lock(&inner.state);
        let lobby = state.lobby_with_pin(lobby_id, pin)?;
        if !lobby.info.multi_user && lobby.info.members.iter().any(|m| *m != session_id) {
            return Err(ApiError::LobbyFull(lobby_id.into()));
        }
        let session = state
            .sessions
            .get(&session_id)
            .ok_or(ApiError::NoSuchSession(session_id))?;
        session.info.lobby.clone()
    };
    if previous.as_deref() == Some(lobby_id) {
        return Ok(());
    }
    if let Some(old) = previous {
        let _ = leave_lobby(inner, &old, session_id, false);
    }
    {
        let mut state = lock(&inner.state);
        let State {
            sessions, lobbies, ..
        } = &mut *state;
        let lobby = lobby_mut(lobbies, lobby_id)?;
        let session = sessions
            .get_mut(&session_id)
            .ok_or(ApiError::NoSuchSession(session_id))?;
        lobby.info.members.push(session_id);
        session.info.lobby = Some(lobby_id.to_string());
        if let Some(feed) = &session.feed {
            let _ = feed.send(FeedCmd::Join(lobby.cmds.clone()));
        }
    }
    tracing::info!(session = session_id, lobby = %lobby_id, "joined lobby");
    emit(
        inner,
        DemoEvent::JoinedLobby {
            session_id,
            lobby_id: lobby_id.to_string(),
        },
    );
    Ok(())
}

/// `switch_producer` false when the session is being destroyed (Wolf's `skip_producer_switch`).
pub(super) fn leave_lobby(
    inner: &Arc<Inner>,
    lobby_id: &str,
    session_id: u64,
    switch_producer: bool,
) -> Result<(), ApiError> {
    let stop = {
        let mut state = lock(&inner.state);
        let State {
            sessions, lobbies, ..
        } = &mut *state;
        let lobby = lobby_mut(lobbies, lobby_id)?;
        let before = lobby.info.members.len();
        lobby.info.members.retain(|m| *m != session_id);
        if lobby.info.members.len() == before {
            return Err(ApiError::NoSuchSession(session_id));
        }
        if let Some(session) = sessions.get_mut(&session_id) {
            session.info.lobby = None;
            if switch_producer {
                if let Some(feed) = &session.feed {
                    let _ = feed.send(FeedCmd::Leave);
                }
            }
        }
        lobby.info.stop_when_everyone_leaves && lobby.info.members.is_empty()
    };
    tracing::info!(session = session_id, lobby = %lobby_id, "left lobby");
    emit(
        inner,
        DemoEvent::LeftLobby {
            session_id,
            lobby_id: lobby_id.to_string(),
        },
    );
    if stop {
        stop_lobby(inner, lobby_id);
    }
    Ok(())
}

impl State {
    /// The lobby `lobby_id` if `pin` opens it (a lobby with a PIN wants that PIN).
    pub(super) fn lobby_with_pin(
        &self,
        lobby_id: &str,
        pin: Option<&[u8]>,
    ) -> Result<&LobbyEntry, ApiError> {
        let lobby = self
            .lobbies
            .get(lobby_id)
            .ok_or_else(|| ApiError::NoSuchLobby(lobby_id.into()))?;
        if lobby.pin.is_some() && lobby.pin.as_deref() != pin {
            return Err(ApiError::WrongPin);
        }
        Ok(lobby)
    }
}

/// The lobby `lobby_id` of `lobbies` (borrowed apart from the sessions), or "no such lobby".
fn lobby_mut<'a>(
    lobbies: &'a mut HashMap<String, LobbyEntry>,
    lobby_id: &str,
) -> Result<&'a mut LobbyEntry, ApiError> {
    lobbies
        .get_mut(lobby_id)
        .ok_or_else(|| ApiError::NoSuchLobby(lobby_id.into()))
}

pub(super) fn stop_lobby(inner: &Arc<Inner>, lobby_id: &str) {
    let members: Vec<u64> = match lock(&inner.state).lobbies.get(lobby_id) {
        Some(l) => l.info.members.clone(),
        None => return,
    };
    for m in members {
        let _ = leave_lobby(inner, lobby_id, m, true);
    }
    // Dropping the entry aborts its producer.
    if lock(&inner.state).lobbies.remove(lobby_id).is_some() {
        tracing::info!(lobby = %lobby_id, "lobby stopped");
        emit(
            inner,
            DemoEvent::LobbyStopped {
                lobby_id: lobby_id.to_string(),
            },
        );
    }
}
