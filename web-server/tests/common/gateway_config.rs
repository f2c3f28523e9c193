//! The files a `moongate` process of a test reads: a private data directory and a config naming
//! one Wolf host (the cluster and fault suites run gateways as processes against hosts of their
//! own).

use std::path::{Path, PathBuf};

/// Owner-only, as moongate wants its data directory and config (it would tighten and warn
/// otherwise).
pub fn private(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Where a test gateway listens and which one Wolf host (on 127.0.0.1) it lists.
pub struct OneHostConfig<'a> {
    /// `bind`, e.g. `127.0.0.1:0`.
    pub bind: &'a str,
    pub host_name: &'a str,
    pub http_port: u16,
    pub https_port: u16,
    /// The host's Wolf API socket.
    pub wolf_api: &'a Path,
}

impl OneHostConfig<'_> {
    /// Creates the private data directory `data` and writes `data/moongate.toml`; its path.
    pub fn write(&self, data: &Path) -> PathBuf {
        std::fs::create_dir_all(data).unwrap();
        private(data, 0o700);
        let config = data.join("moongate.toml");
        std::fs::write(
            &config,
            format!(
                "bind = \"{}\"\n\n[[hosts]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nhttp_port = {}\nhttps_port = {}\nwolf_api = \"{}\"\n",
                self.bind,
                self.host_name,
                self.http_port,
                self.https_port,
                self.wolf_api.display()
            ),
        )
        .unwrap();
        private(&config, 0o600);
        config
    }
}
