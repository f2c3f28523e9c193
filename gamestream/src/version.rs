//! The host's `appversion` quad, which drives every generation-dependent switch of the protocol.
//!
//! Parsing follows moonlight-common-c: four `.`-separated signed integers, missing fields = 0, each
//! parsed like C `strtol` (leading digits only). Sunshine, and Wolf which copies it, report a negative
//! fourth field (`7.1.431.-1`); that is how a client recognises a host with the Sunshine extensions.

use std::fmt;

/// A parsed `appversion`, e.g. `7.1.431.-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppVersion {
    /// Generation: 3..7 for every host in the field.
    pub major: i32,
    /// Minor field.
    pub minor: i32,
    /// Patch field (431 etc.).
    pub patch: i32,
    /// Negative for Sunshine-compatible hosts.
    pub build: i32,
}

impl AppVersion {
    /// The version Sunshine and Wolf report, and what our own host reports.
    pub const SUNSHINE: AppVersion = AppVersion {
        major: 7,
        minor: 1,
        patch: 431,
        build: -1,
    };

    /// Builds a version from its four fields.
    pub const fn new(major: i32, minor: i32, patch: i32, build: i32) -> Self {
        Self {
            major,
            minor,
            patch,
            build,
        }
    }

    /// Parses like moonlight-common-c's `extractVersionQuadFromString`; never fails (garbage = 0).
    pub fn parse(s: &str) -> Self {
        let mut f = [0i32; 4];
        for (slot, part) in f.iter_mut().zip(s.trim().split('.')) {
            *slot = strtol_prefix(part);
        }
        Self {
            major: f[0],
            minor: f[1],
            patch: f[2],
            build: f[3],
        }
    }

    /// True iff the first three fields are at least `(major, minor, patch)`.
    pub fn at_least(&self, major: i32, minor: i32, patch: i32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }

    /// Sunshine (and Wolf) mark themselves with a negative fourth field.
    pub fn is_sunshine(&self) -> bool {
        self.build < 0
    }

    /// `>= 7.1.431`: encrypted control stream, IDR request 0x0302, single `PLAY /`, termination 0x0109.
    pub fn has_encrypted_control(&self) -> bool {
        self.at_least(7, 1, 431)
    }

    /// `>= 7.1.415`: the 100 ms periodic ping replaces the 50 ms loss statistics.
    pub fn has_periodic_ping(&self) -> bool {
        self.at_least(7, 1, 415)
    }

    /// Generations 5..7 with a third field below 404 run RTSP over ENet (legacy GFE only).
    pub fn uses_rtsp_over_enet(&self) -> bool {
        (5..=7).contains(&self.major) && self.patch < 404
    }

    /// The `X-GS-ClientVersion` header and SDP `o=` version for this host.
    pub fn client_version(&self) -> u32 {
        match self.major {
            3 => 10,
            4 => 11,
            5 => 12,
            6 => 13,
            _ => 14,
        }
    }
}

impl Default for AppVersion {
    fn default() -> Self {
        Self::SUNSHINE
    }
}

impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.patch, self.build
        )
    }
}

/// C `strtol(s, NULL, 10)` on a fragment: optional sign, then leading digits; anything else = 0.
fn strtol_prefix(s: &str) -> i32 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + i64::from(b - b'0')).min(i64::from(i32::MAX) + 1);
    }
    let v = if neg { -v } else { v };
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checklist_versions() {
        let v = AppVersion::parse("7.1.431.-1");
        assert_eq!(v, AppVersion::new(7, 1, 431, -1));
        assert!(v.is_sunshine() && v.has_encrypted_control() && !v.uses_rtsp_over_enet());
        let v = AppVersion::parse("7.1.415.0");
        assert!(v.has_periodic_ping() && !v.has_encrypted_control() && !v.is_sunshine());
        assert!(AppVersion::parse("7.1.402.0").uses_rtsp_over_enet());
        assert_eq!(AppVersion::parse("5"), AppVersion::new(5, 0, 0, 0));
        assert_eq!(AppVersion::parse("garbage.x"), AppVersion::new(0, 0, 0, 0));
        assert_eq!(AppVersion::parse("99999999999.1").major, i32::MAX);
        assert_eq!(AppVersion::SUNSHINE.to_string(), "7.1.431.-1");
    }

    #[test]
    fn client_version_by_major() {
        let got: Vec<u32> = (3..=8)
            .map(|m| AppVersion::new(m, 0, 0, 0).client_version())
            .collect();
        assert_eq!(got, vec![10, 11, 12, 13, 14, 14]);
    }
}
