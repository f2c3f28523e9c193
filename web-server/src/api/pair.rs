//! PIN pairing: `POST /api/hosts/{id}/pair` generates a 4-digit PIN, answers it at once (the user
//! types it on the host) and pairs in a background task; `GET /api/hosts/{id}/pair/events`
//! streams the progress as server-sent events (`waiting_for_pin`, then `paired`, `failed` or
//! `cancelled`; the stream ends after the final state).
//!
//! Each host has at most one pairing job, owned by [`Pairings`]: replacing or forgetting a job,
//! or dropping the state, aborts its task. The task holds no reference to `Pairings`. The PIN
//! is returned to the caller and never logged.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};
use gamestream::nvhttp::NvHttpError;
use gamestream::pairing::PairingError;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::hosts::{host_client, load_host};
use super::{path, GATEWAY_CLIENT_ID};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::PairingState;

/// Device name we pair as.
pub const DEVICE_NAME: &str = "moongate";

/// Progress of one pairing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PairProgress {
    /// Waiting for the user to enter the PIN on the host.
    WaitingForPin,
    /// Paired; the host certificate is pinned.
    Paired,
    /// Failed (`code`: `wrong_pin`, `pairing_timeout`, `host_unreachable`, `pairing_failed`).
    Failed {
        /// Stable code.
        code: String,
        /// Human text.
        message: String,
    },
    /// Cancelled (host removed, or a new pairing replaced this one).
    Cancelled,
}

impl PairProgress {
    fn name(&self) -> &'static str {
        match self {
            PairProgress::WaitingForPin => "waiting_for_pin",
            PairProgress::Paired => "paired",
            PairProgress::Failed { .. } => "failed",
            PairProgress::Cancelled => "cancelled",
        }
    }

    fn is_final(&self) -> bool {
        !matches!(self, PairProgress::WaitingForPin)
    }
}

/// `POST /api/hosts/{id}/pair` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairStarted {
    /// Show this to the user, who enters it on the host.
    pub pin: String,
    /// Where the progress is streamed.
    pub events: String,
}

struct Job {
    progress: watch::Receiver<PairProgress>,
    cancel: watch::Sender<PairProgress>,
    task: JoinHandle<()>,
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.task.is_finished() {
            self.task.abort();
            self.cancel.send_if_modified(|p| {
                if p.is_final() {
                    false
                } else {
                    *p = PairProgress::Cancelled;
                    true
                }
            });
        }
    }
}

/// The pairing jobs, one per host.
#[derive(Default)]
pub struct Pairings {
    jobs: Mutex<HashMap<i64, Job>>,
}

impl Pairings {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cancels and forgets the job of `host_id`.
    pub fn forget(&self, host_id: i64) {
        let job = self.jobs().remove(&host_id);
        drop(job);
    }

    fn progress(&self, host_id: i64) -> Option<watch::Receiver<PairProgress>> {
        self.jobs().get(&host_id).map(|j| j.progress.clone())
    }
}

fn failure(e: &NvHttpError) -> PairProgress {
    let (code, message) = match e {
        NvHttpError::Pairing(PairingError::WrongPin) => (
            "wrong_pin",
            "the PIN entered on the host was wrong".to_string(),
        ),
        NvHttpError::Io(_) | NvHttpError::Timeout | NvHttpError::Tls(_) => {
            ("host_unreachable", format!("the host did not answer: {e}"))
        }
        other => ("pairing_failed", format!("pairing failed: {other}")),
    };
    PairProgress::Failed {
        code: code.into(),
        message,
    }
}

/// `POST /api/hosts/{id}/pair`.
pub async fn start(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<(StatusCode, Json<PairStarted>), ApiError> {
    let host = load_host(&state, path(id)?).await?;
    if state
        .pairings
        .progress(host.id)
        .is_some_and(|p| !p.borrow().is_final())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "pairing_in_progress",
            "a pairing with this host is already waiting for its PIN",
        ));
    }
    let client = host_client(&state, &host).await?;
    let pin = format!("{:04}", rand::rngs::OsRng.gen_range(0..10_000u32));
    state
        .store
        .set_pairing_state(host.id, GATEWAY_CLIENT_ID, PairingState::Pairing)
        .await
        .map_err(super::hosts::store_error)?;

    let (tx, rx) = watch::channel(PairProgress::WaitingForPin);
    let task = {
        let tx = tx.clone();
        let store = std::sync::Arc::clone(&state.store);
        let limit = state.config.timeouts.pairing;
        let pin = pin.clone();
        let host_id = host.id;
        tokio::spawn(async move {
            let result = tokio::time::timeout(limit, client.pair(&pin, DEVICE_NAME)).await;
            let (outcome, stored) = match result {
                Ok(Ok(paired)) => {
                    match store
                        .set_server_cert(host_id, Some(paired.host_cert_pem))
                        .await
                    {
                        Ok(()) => (PairProgress::Paired, PairingState::Paired),
                        Err(e) => (
                            PairProgress::Failed {
                                code: "pairing_failed".into(),
                                message: format!("could not store the pairing: {e}"),
                            },
                            PairingState::Failed,
                        ),
                    }
                }
                Ok(Err(e)) => (failure(&e), PairingState::Failed),
                Err(_) => (
                    PairProgress::Failed {
                        code: "pairing_timeout".into(),
                        message: "the PIN was not entered on the host in time".into(),
                    },
                    PairingState::Failed,
                ),
            };
            if let Err(e) = store
                .set_pairing_state(host_id, GATEWAY_CLIENT_ID, stored)
                .await
            {
                tracing::warn!(host_id, error = %e, "could not record the pairing state");
            }
            tracing::info!(host_id, outcome = outcome.name(), "pairing ended");
            tx.send_replace(outcome);
        })
    };
    // Replacing an older (finished) job drops it.
    state.pairings.jobs().insert(
        host.id,
        Job {
            progress: rx,
            cancel: tx,
            task,
        },
    );
    tracing::info!(host_id = host.id, "pairing started; PIN shown to the user");
    Ok((
        StatusCode::ACCEPTED,
        Json(PairStarted {
            pin,
            events: format!("/api/hosts/{}/pair/events", host.id),
        }),
    ))
}

/// `GET /api/hosts/{id}/pair/events`: the current state first, then every change, ending after
/// the final state.
pub async fn events(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = path(id)?;
    let Some(rx) = state.pairings.progress(id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_pairing",
            "no pairing was started with this host",
        ));
    };
    let stream = stream::unfold((rx, true, false), |(mut rx, first, done)| async move {
        if done {
            return None;
        }
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let progress = rx.borrow_and_update().clone();
        let event = Event::default()
            .event(progress.name())
            .json_data(&progress)
            .unwrap_or_else(|_| Event::default().event(progress.name()));
        let done = progress.is_final();
        Some((Ok(event), (rx, false, done)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
