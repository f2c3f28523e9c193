use super::*;

fn new_host(name: &str) -> NewHost {
    NewHost {
        name: name.into(),
        address: "10.0.0.2".into(),
        http_port: 47989,
        https_port: None,
        mac: Some("00:11:22:33:44:55".into()),
        wolf_api: None,
    }
}

fn identity(host_id: i64, client: &str) -> ClientIdentityRecord {
    ClientIdentityRecord {
        host_id,
        client_id: client.into(),
        cert_pem: "-----BEGIN CERTIFICATE-----".into(),
        key_pem: "TOP-SECRET-KEY".into(),
        pairing: PairingState::Unpaired,
        updated_at: 0,
    }
}

#[tokio::test]
async fn hosts_identities_and_pairing_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moongate.db");
    let id = {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let a = store.add_host(new_host("a")).await.unwrap();
        let b = store.add_host(new_host("b")).await.unwrap();
        assert_ne!(a.id, b.id);
        store
            .set_server_cert(a.id, Some("HOST PEM".into()))
            .await
            .unwrap();
        store.put_identity(identity(a.id, "c1")).await.unwrap();
        assert!(store
            .set_pairing_state(a.id, "c1", PairingState::Paired)
            .await
            .unwrap());
        assert!(!store
            .set_pairing_state(a.id, "nobody", PairingState::Paired)
            .await
            .unwrap());
        a.id
    };
    // First use wins: a second insert for the same (host, client) returns the first.
    {
        let store = SqliteStore::open(&path).unwrap();
        let mut second = identity(id, "c1");
        second.cert_pem = "OTHER".into();
        let kept = store.insert_identity_if_absent(second).await.unwrap();
        assert_eq!(kept.cert_pem, "-----BEGIN CERTIFICATE-----");
        let mut fresh = identity(id, "c9");
        fresh.cert_pem = "NINE".into();
        let stored = store.insert_identity_if_absent(fresh).await.unwrap();
        assert_eq!(stored.cert_pem, "NINE");
    }
    // Reopen: migrations are not re-applied, data is there.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let hosts = store.list_hosts().await.unwrap();
    assert_eq!(hosts.len(), 2);
    let a = store.get_host(id).await.unwrap().unwrap();
    assert_eq!(a.server_cert_pem.as_deref(), Some("HOST PEM"));
    assert_eq!(a.mac.as_deref(), Some("00:11:22:33:44:55"));
    let ident = store.get_identity(id, "c1").await.unwrap().unwrap();
    assert_eq!(ident.pairing, PairingState::Paired);
    assert_eq!(ident.key_pem, "TOP-SECRET-KEY");
    assert!(!format!("{ident:?}").contains("TOP-SECRET"), "key in Debug");

    // Removing a host removes its identities (foreign key cascade).
    assert!(store.remove_host(id).await.unwrap());
    assert!(!store.remove_host(id).await.unwrap());
    assert!(store.get_identity(id, "c1").await.unwrap().is_none());
    assert!(matches!(
        store.put_identity(identity(id, "c2")).await,
        Err(StoreError::NoSuchHost(_))
    ));
    assert!(matches!(
        store.insert_identity_if_absent(identity(id, "c3")).await,
        Err(StoreError::NoSuchHost(_))
    ));
    assert!(matches!(
        store.set_server_cert(id, None).await,
        Err(StoreError::NoSuchHost(_))
    ));
}

#[tokio::test]
async fn wolf_api_is_persisted_and_old_databases_gain_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moongate.db");
    // A database at schema 1 (before `wolf_api`) with one host.
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO hosts (name, address, http_port, added_at) VALUES ('old', 'h', 47989, 1)",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let old = store.list_hosts().await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].wolf_api, None);
    let mut h = new_host("wolf");
    h.wolf_api = Some("/run/wolf/wolf.sock".into());
    let added = store.add_host(h).await.unwrap();
    assert_eq!(added.wolf_api.as_deref(), Some("/run/wolf/wolf.sock"));
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let got = store.get_host(added.id).await.unwrap().unwrap();
    assert_eq!(got.wolf_api.as_deref(), Some("/run/wolf/wolf.sock"));
    let all = store.list_hosts().await.unwrap();
    assert_eq!(all[1].wolf_api.as_deref(), Some("/run/wolf/wolf.sock"));
}

fn raw_files(path: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(&p) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn keys_are_encrypted_at_rest_and_useless_without_the_store_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moongate.db");
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----";
    // A database of an earlier version: plaintext keys.
    let host = {
        let plain = SqliteStore::open(&path).unwrap();
        let host = plain.add_host(new_host("a")).await.unwrap();
        let mut rec = identity(host.id, "c1");
        rec.key_pem = PEM.into();
        plain.put_identity(rec).await.unwrap();
        host
    };
    assert!(contains(&raw_files(&path), b"PRIVATE KEY"));
    let key = StoreKey::generate();
    {
        let store = SqliteStore::open_with_key(&path, key.clone()).unwrap();
        // Migrated at open; still readable with the key.
        let got = store.get_identity(host.id, "c1").await.unwrap().unwrap();
        assert_eq!(got.key_pem, PEM);
        let mut rec = identity(host.id, "c2");
        rec.key_pem = PEM.into();
        store.insert_identity_if_absent(rec).await.unwrap();
        assert!(!contains(&raw_files(&path), b"PRIVATE KEY"));
        assert!(!contains(&raw_files(&path), b"SECRETSECRET"));
    }
    assert!(!contains(&raw_files(&path), b"PRIVATE KEY"));
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(m) = std::fs::metadata(&p) {
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{suffix}");
        }
    }

    // The database copied alone: no key, or the wrong key, yields a typed error.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let keyless = SqliteStore::open(&copy).unwrap();
    assert!(matches!(
        keyless.get_identity(host.id, "c1").await,
        Err(StoreError::KeyRequired)
    ));
    let wrong = SqliteStore::open_with_key(&copy, StoreKey::generate()).unwrap();
    let err = wrong.get_identity(host.id, "c1").await.unwrap_err();
    assert!(matches!(err, StoreError::Decrypt { .. }), "{err}");
    // A ciphertext moved to another row does not decrypt there either.
    {
        let c = Connection::open(&copy).unwrap();
        c.execute(
            "UPDATE client_identities SET key_pem =
               (SELECT key_pem FROM client_identities WHERE client_id = 'c1')
             WHERE client_id = 'c2'",
            [],
        )
        .unwrap();
    }
    let right = SqliteStore::open_with_key(&copy, key).unwrap();
    assert_eq!(
        right
            .get_identity(host.id, "c1")
            .await
            .unwrap()
            .unwrap()
            .key_pem,
        PEM
    );
    assert!(matches!(
        right.get_identity(host.id, "c2").await,
        Err(StoreError::Decrypt { .. })
    ));
}

#[tokio::test]
async fn identities_are_listed_touched_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with_key(&dir.path().join("m.db"), StoreKey::generate()).unwrap();
    let h = store.add_host(new_host("a")).await.unwrap();
    store.put_identity(identity(h.id, "c1")).await.unwrap();
    store.put_identity(identity(h.id, "c2")).await.unwrap();
    let list = store.list_identities().await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0].created_at > 0 && list[0].last_used >= list[0].created_at);
    assert!(store
        .touch_identity(h.id, "c1", i64::MAX / 2)
        .await
        .unwrap());
    assert!(!store.touch_identity(h.id, "zz", 1).await.unwrap());
    let list = store.list_identities().await.unwrap();
    assert_eq!(list[0].last_used, i64::MAX / 2);
    assert!(store.remove_identity(h.id, "c1").await.unwrap());
    assert!(!store.remove_identity(h.id, "c1").await.unwrap());
    assert_eq!(store.list_identities().await.unwrap().len(), 1);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Corrupt(_))
    ));
}
