//! How a stream's connection ends toward the browser: the close code, the reason, and the error
//! sent before the close frame (what passes through Helix's proxy) — a typed
//! [`ErrorCode`](wire::browser::ErrorCode) next to its text, so each transport decides from the
//! code (the signaling socket's bare string, WHEP's status) and never from the text.

use wire::browser::{self, BrowserError, ErrorCode};

use crate::limits::Rejection;
use crate::sessions::StopReason;
use crate::state::AppState;

/// How a connection ends toward the browser (shared with the WebRTC signaling socket and WHEP).
#[derive(Debug)]
pub(crate) struct Close {
    pub(crate) code: u16,
    pub(crate) reason: String,
    /// Sent first as `{"error": …, "code": …}` (the message is what passes through Helix's
    /// proxy).
    pub(crate) error: Option<BrowserError>,
    /// A normal close because the WebRTC peer went away (the signaling socket says
    /// `PeerDisconnect`).
    pub(crate) peer_gone: bool,
}

impl Close {
    pub(crate) fn normal(reason: &str) -> Self {
        Close {
            code: browser::CLOSE_NORMAL,
            reason: reason.into(),
            error: None,
            peer_gone: false,
        }
    }
    /// The WebRTC peer is gone: a normal end, reason `PeerDisconnect`.
    pub(crate) fn peer_gone() -> Self {
        Close {
            peer_gone: true,
            ..Self::normal("PeerDisconnect")
        }
    }
    /// 1011 with `error`.
    pub(crate) fn failed(error: BrowserError) -> Self {
        Self::with_error(browser::CLOSE_INTERNAL_ERROR, error)
    }
    /// 1011 with `"<code>: <detail>"`.
    pub(crate) fn failure(code: ErrorCode, detail: impl std::fmt::Display) -> Self {
        Self::failed(BrowserError::new(code, detail))
    }
    /// 1008 with `"<code>: <detail>"`.
    pub(crate) fn policy(code: ErrorCode, detail: impl std::fmt::Display) -> Self {
        Self::with_error(
            browser::CLOSE_POLICY_VIOLATION,
            BrowserError::new(code, detail),
        )
    }
    fn with_error(code: u16, error: BrowserError) -> Self {
        Close {
            code,
            reason: error.text.clone(),
            error: Some(error),
            peer_gone: false,
        }
    }
    /// A limit refused the stream or a message: counted, and closed with `code`.
    pub(crate) fn limit(state: &AppState, why: Rejection, code: u16, error: BrowserError) -> Self {
        Self::limit_counted(&state.metrics, why, code, error)
    }
    fn limit_counted(
        metrics: &crate::metrics::Metrics,
        why: Rejection,
        code: u16,
        error: BrowserError,
    ) -> Self {
        metrics.rejected(why);
        tracing::info!(reason = why.as_str(), %error, "a limit refused a stream socket");
        Self::with_error(code, error)
    }
    pub(crate) fn too_big(state: &AppState) -> Self {
        Self::too_big_counted(&state.metrics, state.config.limits.max_message_bytes)
    }
    pub(crate) fn too_big_counted(metrics: &crate::metrics::Metrics, max: usize) -> Self {
        Self::limit_counted(
            metrics,
            Rejection::MessageTooBig,
            crate::limits::CLOSE_MESSAGE_TOO_BIG,
            BrowserError::new(
                ErrorCode::MessageTooBig,
                format!("a message is over {max} bytes"),
            ),
        )
    }
    pub(crate) fn first_message_timeout(state: &AppState, what: &str) -> Self {
        Self::limit(
            state,
            Rejection::FirstMessageTimeout,
            browser::CLOSE_POLICY_VIOLATION,
            BrowserError::with_text(
                ErrorCode::FirstMessageTimeout,
                format!("no {what} message received"),
            ),
        )
    }
    pub(crate) fn stopped(reason: StopReason) -> Self {
        let code = match reason {
            StopReason::Superseded => ErrorCode::Superseded,
            StopReason::AdminKill => ErrorCode::StoppedByAdmin,
            StopReason::Shutdown => ErrorCode::ServerShutdown,
        };
        Self::with_error(
            reason.close_code(),
            BrowserError::with_text(code, reason.close_reason()),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_the_code_next_to_the_text() {
        let c = Close::failure(ErrorCode::HostNotPaired, "pair this host first");
        assert_eq!(c.code, browser::CLOSE_INTERNAL_ERROR);
        let e = c.error.expect("a failure has an error");
        assert_eq!(e.code, ErrorCode::HostNotPaired);
        assert_eq!(e.text, "HostNotPaired: pair this host first");
        assert_eq!(c.reason, e.text);

        let c = Close::policy(ErrorCode::Unauthorized, "wrong or missing credentials");
        assert_eq!(c.code, browser::CLOSE_POLICY_VIOLATION);
        assert_eq!(c.error.map(|e| e.code), Some(ErrorCode::Unauthorized));

        let c = Close::peer_gone();
        assert!(c.peer_gone && c.error.is_none());
        assert_eq!(
            (c.code, c.reason.as_str()),
            (browser::CLOSE_NORMAL, "PeerDisconnect")
        );
    }

    #[test]
    fn stops_keep_their_texts_and_get_codes() {
        for (reason, code, close) in [
            (StopReason::Superseded, ErrorCode::Superseded, 4000),
            (StopReason::AdminKill, ErrorCode::StoppedByAdmin, 4001),
            (StopReason::Shutdown, ErrorCode::ServerShutdown, 1001),
        ] {
            let c = Close::stopped(reason);
            assert_eq!((c.code, c.reason.as_str()), (close, reason.close_reason()));
            let e = c.error.expect("a stop tells the browser why");
            assert_eq!((e.code, e.text.as_str()), (code, reason.close_reason()));
        }
    }
}
