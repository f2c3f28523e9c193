//! Secrets at rest (issue 16): the real `moongate` binary leaves only owner-only files in its data
//! directory, even under a wide umask and over a data directory an older version left readable;
//! no private key is in plain text in the database files; idle identities expire from the store
//! and from the demo host's paired list; the admin API lists and revokes identities.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;
use web_server::autopair::ensure_paired;
use web_server::identities::{now_unix, sweep_idle};

const T: Duration = Duration::from_secs(30);

/// Starts the binary under `umask` (through `sh`, the way a user's shell would), waits for its
/// URL and credential lines and for the embedded host's pairing, then stops it with SIGTERM.
async fn run_once(data_dir: &Path, umask: &str) -> String {
    let exe = env!("CARGO_BIN_EXE_moongate");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\""))
        .arg(exe)
        .env("MOONGATE_BIND", "127.0.0.1:0")
        .env("MOONGATE_DATA_DIR", data_dir)
        .env_remove("MOONGATE_CREDENTIALS")
        .env_remove("MOONGATE_ADMIN_CREDENTIALS")
        .env_remove("MOONGATE_STORE_KEY")
        .env_remove("MOONGATE_CONFIG")
        .env("MOONGATE_STREAMER", streamer_exe())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // URL, credential, embedded host: printed once the host is installed and paired.
    for _ in 0..3 {
        timeout(T, lines.next_line())
            .await
            .expect("no output")
            .unwrap()
            .expect("stdout closed");
    }
    let pid = child.id().unwrap();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let exit = timeout(T, child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    stderr
}

/// Every entry under `dir` (inclusive) with its file type and mode.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, std::fs::FileType, u32)>) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    out.push((
        dir.to_path_buf(),
        meta.file_type(),
        meta.permissions().mode() & 0o7777,
    ));
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            walk(&e.unwrap().path(), out);
        }
    }
}

/// Asserts 0700 directories and 0600 files; a socket (the Wolf API's) must have no group/other
/// bits (it sits in a 0700 directory anyway). Returns how many regular files were checked.
fn assert_owner_only(data_dir: &Path) -> usize {
    let mut entries = Vec::new();
    walk(data_dir, &mut entries);
    let mut files = 0;
    for (path, ft, mode) in &entries {
        if ft.is_dir() {
            assert_eq!(*mode, 0o700, "{} is {mode:o}", path.display());
        } else if ft.is_file() {
            files += 1;
            assert_eq!(*mode, 0o600, "{} is {mode:o}", path.display());
        } else if ft.is_socket() {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        } else {
            panic!("unexpected entry {} ({ft:?})", path.display());
        }
    }
    files
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The raw bytes of the database and its WAL/SHM (whichever exist).
fn db_bytes(data_dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["moongate.db", "moongate.db-wal", "moongate.db-shm"] {
        if let Ok(b) = std::fs::read(data_dir.join(name)) {
            all.extend(b);
        }
    }
    all
}

#[tokio::test]
async fn fresh_start_under_umask_022_leaves_only_owner_only_files() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("moongate-data");
    run_once(&data, "022").await;
    let files = assert_owner_only(&data);
    // The database, the store key, both credentials and the demo host's identity at least.
    assert!(files >= 5, "{files} files");
    for name in [
        "moongate.db",
        "store.key",
        "credentials",
        "admin-credentials",
    ] {
        assert!(data.join(name).is_file(), "{name} missing");
    }
    let db = db_bytes(&data);
    assert!(!db.is_empty());
    assert!(
        contains(&db, b"CERTIFICATE"),
        "the store holds the identity"
    );
    assert!(
        !contains(&db, b"PRIVATE KEY"),
        "a private key in plain text"
    );
}

#[tokio::test]
async fn a_wide_data_dir_is_tightened_with_warnings_even_under_umask_000() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("moongate-data");
    run_once(&data, "022").await;
    // What an older moongate left behind: world-readable everything.
    let mut entries = Vec::new();
    walk(&data, &mut entries);
    for (path, ft, _) in &entries {
        let mode = if ft.is_dir() { 0o755 } else { 0o644 };
        if !ft.is_socket() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let logs = run_once(&data, "000").await;
    assert!(
        logs.contains("tightened the mode") && logs.contains("moongate.db"),
        "{logs}"
    );
    assert_owner_only(&data);
    assert!(!contains(&db_bytes(&data), b"PRIVATE KEY"));
    // The key never reaches the log.
    let key = std::fs::read_to_string(data.join("store.key")).unwrap();
    assert!(!logs.contains(key.trim()));
}

#[tokio::test]
async fn a_database_copied_without_its_key_yields_no_usable_key() {
    use web_server::store::{HostStore, SqliteStore, StoreError};
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("d");
    run_once(&data, "022").await;
    let stolen = root.path().join("stolen.db");
    std::fs::copy(data.join("moongate.db"), &stolen).unwrap();
    let store = SqliteStore::open(&stolen).unwrap();
    let idents = store.list_identities().await.unwrap();
    assert!(!idents.is_empty());
    for i in &idents {
        assert!(matches!(
            store.get_identity(i.host_id, &i.client_id).await,
            Err(StoreError::KeyRequired)
        ));
    }
    // With the right key (the file beside it) the same row is readable and a real key.
    let key = web_server::store_key::StoreKey::load(&data.join("store.key")).unwrap();
    let store = SqliteStore::open_with_key(&stolen, key).unwrap();
    let rec = store
        .get_identity(idents[0].host_id, &idents[0].client_id)
        .await
        .unwrap()
        .unwrap();
    gamestream::identity::Identity::from_pem(&rec.cert_pem, &rec.key_pem).unwrap();
}

/// Pairs `client_id`'s identity with the embedded host; returns its id on the host.
async fn pair(gw: &Gateway, client_id: &str) -> u64 {
    let host = gw.state.store.list_hosts().await.unwrap().remove(0);
    let identity = gw.state.certs.get_or_create(client_id).await.unwrap();
    ensure_paired(&gw.state, &host, client_id, &identity)
        .await
        .unwrap();
    let der = gamestream::identity::cert_der_from_pem(identity.cert_pem.as_bytes()).unwrap();
    gamestream::host::client_id_of(&der)
}

fn on_host(gw: &Gateway, host_client: u64) -> bool {
    gw.host
        .paired_clients()
        .iter()
        .any(|c| c.client_id == host_client)
}

#[tokio::test]
async fn idle_identities_expire_from_the_store_and_the_host() {
    let gw = admin_gateway().await;
    let old = pair(&gw, "browser-old").await;
    let recent = pair(&gw, "browser-recent").await;
    assert!(on_host(&gw, old) && on_host(&gw, recent));
    let host_id = gw.state.store.list_hosts().await.unwrap()[0].id;
    let idle = gw.state.config.identity_idle.as_secs() as i64;
    assert_eq!(idle, 30 * 86_400, "default 30 days");

    // Nothing is idle yet.
    assert!(sweep_idle(&gw.state, now_unix()).await.unwrap().is_empty());
    // 31 days later; "browser-recent" streamed a day before.
    let later = now_unix() + 31 * 86_400;
    gw.state
        .store
        .touch_identity(host_id, "browser-recent", later - 86_400)
        .await
        .unwrap();
    let expired = sweep_idle(&gw.state, later).await.unwrap();
    let names: Vec<_> = expired.iter().map(|i| i.client_id.as_str()).collect();
    assert!(names.contains(&"browser-old"), "{names:?}");
    assert!(!names.contains(&"browser-recent"), "{names:?}");

    let left = gw.state.store.list_identities().await.unwrap();
    assert!(left.iter().all(|i| i.client_id != "browser-old"));
    assert!(left.iter().any(|i| i.client_id == "browser-recent"));
    assert!(
        !on_host(&gw, old),
        "the expired identity is still paired on the host"
    );
    assert!(on_host(&gw, recent));
    assert!(gw.state.certs.lookup("browser-old").is_none());
}

#[tokio::test]
async fn the_admin_api_lists_and_revokes_identities() {
    let gw = admin_gateway().await;
    let on = pair(&gw, "browser-1").await;
    let host_id = gw.state.store.list_hosts().await.unwrap()[0].id;

    let list = admin_get(&gw, "/api/admin/identities").await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["client_id"] == "browser-1")
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    assert_eq!(entry["host_id"], host_id);
    assert_eq!(entry["pairing"], "paired");
    assert!(entry["last_used"].as_i64().unwrap() >= entry["created_at"].as_i64().unwrap());
    assert!(!list.to_string().contains("PRIVATE KEY") && !list.to_string().contains("key_pem"));

    let path = format!("/api/admin/identities/{host_id}/browser-1");
    // The user credential is not enough.
    let r = http(gw.addr, "DELETE", &path, Some(SECRET), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(on_host(&gw, on));

    let r = http(gw.addr, "DELETE", &path, Some(ADMIN_SECRET), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["host_unpair"], "wolf_api");
    assert!(!on_host(&gw, on), "still paired on the host");
    assert!(gw.state.certs.lookup("browser-1").is_none());
    let list = admin_get(&gw, "/api/admin/identities").await;
    assert!(!list.to_string().contains("browser-1"), "{list}");

    let r = http(gw.addr, "DELETE", &path, Some(ADMIN_SECRET), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http(
        gw.addr,
        "DELETE",
        "/api/admin/identities/x/y",
        Some(ADMIN_SECRET),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // A revoked browser pairs again with a fresh identity on its next use.
    let again = pair(&gw, "browser-1").await;
    assert_ne!(again, on);
    assert!(on_host(&gw, again));
}
