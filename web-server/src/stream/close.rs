//! How a stream's connection ends toward the browser: the close code, the reason, and the error
//! message sent before the close frame (what passes through Helix's proxy).

use wire::browser;

use crate::limits::Rejection;
use crate::sessions::StopReason;
use crate::state::AppState;

/// How a connection ends toward the browser (shared with the WebRTC signaling socket and WHEP).
#[derive(Debug)]
pub(crate) struct Close {
    pub(crate) code: u16,
    pub(crate) reason: String,
    /// Sent first as `{"error": …}` (the message is what passes through Helix's proxy).
    pub(crate) error: Option<String>,
}

impl Close {
    pub(crate) fn normal(reason: &str) -> Self {
        Close {
            code: browser::CLOSE_NORMAL,
            reason: reason.into(),
            error: None,
        }
    }
    pub(crate) fn failure(error: impl Into<String>) -> Self {
        let error = error.into();
        Close {
            code: browser::CLOSE_INTERNAL_ERROR,
            reason: error.clone(),
            error: Some(error),
        }
    }
    pub(crate) fn policy(error: impl Into<String>) -> Self {
        let error = error.into();
        Close {
            code: browser::CLOSE_POLICY_VIOLATION,
            reason: error.clone(),
            error: Some(error),
        }
    }
    /// A limit refused the stream or a message: counted, and closed with `code`.
    pub(crate) fn limit(state: &AppState, why: Rejection, code: u16, error: String) -> Self {
        Self::limit_counted(&state.metrics, why, code, error)
    }
    fn limit_counted(
        metrics: &crate::metrics::Metrics,
        why: Rejection,
        code: u16,
        error: String,
    ) -> Self {
        metrics.rejected(why);
        tracing::info!(reason = why.as_str(), %error, "a limit refused a stream socket");
        Close {
            code,
            reason: error.clone(),
            error: Some(error),
        }
    }
    pub(crate) fn too_big(state: &AppState) -> Self {
        Self::too_big_counted(&state.metrics, state.config.limits.max_message_bytes)
    }
    pub(crate) fn too_big_counted(metrics: &crate::metrics::Metrics, max: usize) -> Self {
        Self::limit_counted(
            metrics,
            Rejection::MessageTooBig,
            crate::limits::CLOSE_MESSAGE_TOO_BIG,
            format!("MessageTooBig: a message is over {max} bytes"),
        )
    }
    pub(crate) fn first_message_timeout(state: &AppState, what: &str) -> Self {
        Self::limit(
            state,
            Rejection::FirstMessageTimeout,
            browser::CLOSE_POLICY_VIOLATION,
            format!("no {what} message received"),
        )
    }
    pub(crate) fn stopped(reason: StopReason) -> Self {
        Close {
            code: reason.close_code(),
            reason: reason.close_reason().into(),
            error: Some(reason.close_reason().into()),
        }
    }
}

/// A close reason is at most 123 bytes.
pub(crate) fn clip_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
