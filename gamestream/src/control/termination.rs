//! The host's termination message and what its code means to a client.

/// Which of the two termination layouts carried the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationForm {
    /// `LE16 reason` (gen 7 < 7.1.431 hosts).
    Short,
    /// `BE32 HRESULT` (payload >= 4 bytes; what Sunshine, Wolf and GFE >= 3.22 send).
    Extended,
}

/// A termination as sent on the wire: the raw code and the layout it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Termination {
    /// HRESULT (extended) or 16-bit reason (short).
    pub code: u32,
    /// Layout.
    pub form: TerminationForm,
}

/// What a termination means for the client, following moonlight-common-c's normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// The host ended the stream normally after at least one frame was seen.
    Graceful,
    /// A "normal" end before any frame was seen: probably a host-side failure (ML error −102).
    UnexpectedEarly,
    /// Protected content on the host display (ML error −103).
    ProtectedContent,
    /// The host encoder failed to convert a frame (ML error −104).
    FrameConversion,
    /// Any other code, reported unchanged.
    Other(u32),
}

impl Termination {
    /// `NVST_DISCONN_SERVER_TERMINATED_CLOSED`: what Sunshine and Wolf send when a session ends.
    pub const SERVER_CLOSED: u32 = 0x8003_0023;
    /// `NVST_DISCONN_SERVER_VFP_PROTECTED_CONTENT`.
    pub const PROTECTED_CONTENT: u32 = 0x800E_9302;
    /// `NVST_DISCONN_SERVER_VIDEO_ENCODER_CONVERT_INPUT_FRAME_FAILED`.
    pub const FRAME_CONVERSION: u32 = 0x800E_9403;
    /// Short-form `SERVER_TERMINATED_INTENDED`.
    pub const INTENDED_SHORT: u32 = 0x0100;

    /// The termination every modern host sends when the session ends normally.
    pub const fn server_closed() -> Self {
        Self {
            code: Self::SERVER_CLOSED,
            form: TerminationForm::Extended,
        }
    }

    /// Classifies the code; `saw_frame` distinguishes a normal end from an early failure.
    pub fn reason(&self, saw_frame: bool) -> TerminationReason {
        let normal = match self.form {
            TerminationForm::Extended => match self.code {
                Self::PROTECTED_CONTENT => return TerminationReason::ProtectedContent,
                Self::FRAME_CONVERSION => return TerminationReason::FrameConversion,
                c => c == Self::SERVER_CLOSED,
            },
            TerminationForm::Short => self.code == Self::INTENDED_SHORT,
        };
        match (normal, saw_frame) {
            (true, true) => TerminationReason::Graceful,
            (true, false) => TerminationReason::UnexpectedEarly,
            (false, _) => TerminationReason::Other(self.code),
        }
    }
}

impl TerminationReason {
    /// The value moonlight-common-c passes to `connectionTerminated` (0 = graceful).
    pub fn error_code(&self) -> i32 {
        match self {
            Self::Graceful => 0,
            Self::UnexpectedEarly => -102,
            Self::ProtectedContent => -103,
            Self::FrameConversion => -104,
            Self::Other(c) => *c as i32,
        }
    }

    /// True only for a normal end of stream.
    pub fn is_graceful(&self) -> bool {
        matches!(self, Self::Graceful)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let t = Termination::server_closed();
        assert_eq!(t.reason(true), TerminationReason::Graceful);
        assert_eq!(t.reason(false), TerminationReason::UnexpectedEarly);
        assert_eq!(t.reason(false).error_code(), -102);
        let p = Termination {
            code: 0x800E_9302,
            form: TerminationForm::Extended,
        };
        assert_eq!(p.reason(true).error_code(), -103);
        let f = Termination {
            code: 0x800E_9403,
            form: TerminationForm::Extended,
        };
        assert_eq!(f.reason(false).error_code(), -104);
        let s = Termination {
            code: 0x0100,
            form: TerminationForm::Short,
        };
        assert!(s.reason(true).is_graceful());
        let o = Termination {
            code: 0x0005,
            form: TerminationForm::Short,
        };
        assert_eq!(o.reason(true), TerminationReason::Other(5));
        // A short-form code equal to the HRESULT's low bits is not the extended "closed" code.
        let x = Termination {
            code: 0x0100,
            form: TerminationForm::Extended,
        };
        assert_eq!(x.reason(true), TerminationReason::Other(0x0100));
    }
}
