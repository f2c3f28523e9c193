//! What the host keeps on disk: its identity (certificate + key, mode 0600) and paired clients.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gamestream::identity::Identity;
use gamestream::nvhttp::{PairedClient, PairedClients};
use serde::{Deserialize, Serialize};

/// Errors of the on-disk state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is malformed.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file readable only by its owner (keys, client certificates), atomically.
fn write_private(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io(&tmp))?;
        file.write_all(data).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Loads the host identity from `dir`, or makes one and stores it.
pub fn load_or_create_identity(dir: &Path, hostname: &str) -> Result<Identity, StoreError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cert_path = dir.join("host_cert.pem");
    let key_path = dir.join("host_key.pem");
    if cert_path.exists() && key_path.exists() {
        let cert = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        return Identity::from_pem(&cert, &key).map_err(|e| StoreError::Malformed {
            path: key_path,
            message: e.to_string(),
        });
    }
    let identity = Identity::new_host(hostname).map_err(|e| StoreError::Malformed {
        path: cert_path.clone(),
        message: e.to_string(),
    })?;
    let key = identity.key_pem().map_err(|e| StoreError::Malformed {
        path: key_path.clone(),
        message: e.to_string(),
    })?;
    write_private(&key_path, key.as_bytes())?;
    write_private(&cert_path, identity.cert_pem.as_bytes())?;
    Ok(identity)
}

/// Loads the host's `uniqueid` from `dir`, or makes one and stores it: Moonlight recognises a
/// host by it, so it must survive restarts.
pub fn load_or_create_unique_id(dir: &Path) -> Result<String, StoreError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("unique_id");
    if path.exists() {
        let id = std::fs::read_to_string(&path).map_err(io(&path))?;
        let id = id.trim();
        if id.is_empty() || id.len() > 64 {
            return Err(StoreError::Malformed {
                path,
                message: "empty or overlong uniqueid".into(),
            });
        }
        return Ok(id.to_string());
    }
    let id = uuid::Uuid::new_v4().to_string();
    write_private(&path, id.as_bytes())?;
    Ok(id)
}

/// A paired client as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredClient {
    unique_id: String,
    device_name: String,
    cert_pem: String,
    cert_der_hex: String,
}

/// Paired clients kept in a JSON file (rewritten on every change).
#[derive(Debug)]
pub struct FilePairedClients {
    path: PathBuf,
    clients: Mutex<Vec<PairedClient>>,
}

impl FilePairedClients {
    /// Opens (or starts) the file `dir/paired_clients.json`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("paired_clients.json");
        let clients = if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let stored: Vec<StoredClient> =
                serde_json::from_str(&text).map_err(|e| StoreError::Malformed {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            stored
                .into_iter()
                .map(|c| {
                    let cert_der =
                        hex::decode(&c.cert_der_hex).map_err(|e| StoreError::Malformed {
                            path: path.clone(),
                            message: e.to_string(),
                        })?;
                    Ok(PairedClient {
                        unique_id: c.unique_id,
                        device_name: c.device_name,
                        cert_pem: c.cert_pem,
                        cert_der,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            path,
            clients: Mutex::new(clients),
        })
    }

    fn save(&self, clients: &[PairedClient]) {
        let stored: Vec<StoredClient> = clients
            .iter()
            .map(|c| StoredClient {
                unique_id: c.unique_id.clone(),
                device_name: c.device_name.clone(),
                cert_pem: c.cert_pem.clone(),
                cert_der_hex: hex::encode(&c.cert_der),
            })
            .collect();
        let result = serde_json::to_vec_pretty(&stored)
            .map_err(|e| StoreError::Malformed {
                path: self.path.clone(),
                message: e.to_string(),
            })
            .and_then(|json| write_private(&self.path, &json));
        if let Err(e) = result {
            tracing::error!("cannot persist paired clients: {e}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PairedClient>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PairedClients for FilePairedClients {
    fn is_paired(&self, cert_der: &[u8]) -> bool {
        self.lock().iter().any(|c| c.cert_der == cert_der)
    }
    fn add(&self, client: PairedClient) {
        let mut clients = self.lock();
        clients.retain(|c| c.cert_der != client.cert_der);
        clients.push(client);
        self.save(&clients);
    }
    fn remove(&self, cert_der: &[u8]) -> bool {
        let mut clients = self.lock();
        let before = clients.len();
        clients.retain(|c| c.cert_der != cert_der);
        let removed = clients.len() != before;
        if removed {
            self.save(&clients);
        }
        removed
    }
    fn list(&self) -> Vec<PairedClient> {
        self.lock().clone()
    }
}

/// A small solid-colour PNG (box art for apps that bring none): stored deflate blocks, no codec.
pub fn solid_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    // Each row: filter byte 0 (none), then the pixels.
    let mut row = vec![0u8];
    row.extend(std::iter::repeat_n(rgb, width as usize).flatten());
    let raw = row.repeat(height as usize);
    // zlib stream of stored blocks.
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_signature_and_chunks() {
        let png = solid_png(4, 3, [10, 20, 30]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert!(png.ends_with(&[0xAE, 0x42, 0x60, 0x82]), "IEND CRC");
    }

    #[test]
    fn paired_clients_survive_reopen_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilePairedClients::open(dir.path()).unwrap();
        store.add(PairedClient {
            unique_id: "u".into(),
            device_name: "d".into(),
            cert_pem: "pem".into(),
            cert_der: vec![1, 2, 3],
        });
        let again = FilePairedClients::open(dir.path()).unwrap();
        assert!(again.is_paired(&[1, 2, 3]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("paired_clients.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bad = dir.path().join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("paired_clients.json"), "{not json").unwrap();
        assert!(matches!(
            FilePairedClients::open(&bad),
            Err(StoreError::Malformed { .. })
        ));
    }
}
