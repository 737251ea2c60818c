use bytes::Bytes;
use orgbase_avatar::testing::S3Server;
use orgbase_avatar::{AvatarFiles, AvatarStorage, DiskStorage, S3Storage};
use uuid::Uuid;

fn files() -> AvatarFiles {
    AvatarFiles::new(Uuid::now_v7(), "0123456789abcdef0123456789abcdef")
}

#[tokio::test]
async fn disk_writes_whole_files_reads_them_back_and_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskStorage::new(dir.path(), "http://127.0.0.1:8080/");
    let f = files();
    let key = f.key(512);
    disk.put(&key, Bytes::from_static(b"png bytes"))
        .await
        .unwrap();
    // Twice: named by content, the second is a no-op.
    disk.put(&key, Bytes::from_static(b"png bytes"))
        .await
        .unwrap();
    assert_eq!(
        disk.read(f.organization, &format!("{}-512.jpg", f.hash))
            .await
            .as_deref(),
        Some(&b"png bytes"[..])
    );
    assert_eq!(disk.url(&key), format!("http://127.0.0.1:8080/{key}"));
    assert_eq!(
        AvatarFiles::from_url("http://127.0.0.1:8080", &disk.url(&key)),
        Some(f.clone())
    );
    // No temporary file is left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.path().join(f.organization.to_string()))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1);
    disk.delete(&key).await.unwrap();
    disk.delete(&key).await.unwrap();
    assert!(disk
        .read(f.organization, &format!("{}-512.jpg", f.hash))
        .await
        .is_none());
}

#[tokio::test]
async fn disk_refuses_keys_and_names_that_are_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
    let disk = DiskStorage::new(dir.path(), "http://x");
    for key in ["avatars/../secret.txt", "secret.txt", "avatars/x/y-512.jpg"] {
        assert!(
            disk.put(key, Bytes::from_static(b"x")).await.is_err(),
            "{key}"
        );
        assert!(disk.delete(key).await.is_err(), "{key}");
    }
    assert!(disk.read(Uuid::nil(), "../secret.txt").await.is_none());
}

#[tokio::test]
async fn s3_stores_with_type_and_cache_headers_and_deletes() {
    let server = S3Server::start();
    let s3 = S3Storage::new(&server.settings("https://cdn.example.com/")).unwrap();
    let f = files();
    let key = f.key(512);
    s3.put(&key, Bytes::from_static(b"png bytes"))
        .await
        .unwrap();
    let (body, content_type) = s3.fetch(&key).await.unwrap().expect("the object");
    assert_eq!(&body[..], b"png bytes");
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(s3.url(&key), format!("https://cdn.example.com/{key}"));
    s3.delete(&key).await.unwrap();
    s3.delete(&key).await.unwrap();
    assert!(s3.fetch(&key).await.unwrap().is_none());
    assert!(s3.keys().await.unwrap().is_empty());
}

#[tokio::test]
async fn s3_failure_is_an_error_without_credentials_in_it() {
    let server = S3Server::start();
    let mut settings = server.settings("https://cdn.example.com");
    settings.bucket = "no-such-bucket".into();
    settings.secret_access_key = Some("top-secret-value".into());
    let s3 = S3Storage::new(&settings).unwrap();
    let err = s3
        .put(&files().key(512), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("top-secret-value"), "{text}");
    assert!(!format!("{settings:?}").contains("top-secret-value"));
}
