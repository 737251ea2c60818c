//! Avatars through the seed's upload route: every refusal stores nothing and changes nothing, on
//! local disk and on a real S3-compatible server (moto), against SQLite and PostgreSQL.
use orgbase_api::native::avatars::AvatarConfig;
use orgbase_api::ApiConfig;
use orgbase_avatar::testing::{images, S3Server};
use orgbase_avatar::S3Storage;
use orgbase_store::testing::TestDb;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{Answer, App};

/// Generates, for each `async fn(Avatars)`, one test per database × storage.
macro_rules! avatar_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_disk { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Avatars::start(orgbase_store::testing::sqlite().await, false).await).await;
            }
        )* }
        mod sqlite_s3 { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Avatars::start(orgbase_store::testing::sqlite().await, true).await).await;
            }
        )* }
        mod postgres_disk { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = orgbase_store::testing::postgres().await else {
                    eprintln!("skipped: TEST_DATABASE_URL is not set");
                    return;
                };
                super::$name(super::Avatars::start(db, false).await).await;
            }
        )* }
        mod postgres_s3 { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = orgbase_store::testing::postgres().await else {
                    eprintln!("skipped: TEST_DATABASE_URL is not set");
                    return;
                };
                super::$name(super::Avatars::start(db, true).await).await;
            }
        )* }
    };
}

avatar_tests!(
    an_upload_becomes_the_avatar_everywhere,
    every_refusal_stores_nothing_and_changes_nothing,
    who_may_upload,
    replacing_and_removing_remove_the_old_files,
);

/// The app with its avatar storage: a temporary folder, or a bucket on a moto server.
pub struct Avatars {
    app: App,
    dir: tempfile::TempDir,
    s3: Option<(S3Server, S3Storage)>,
}

const CDN: &str = "https://cdn.example.test/";

impl Avatars {
    async fn start(db: TestDb, s3: bool) -> Self {
        Self::start_with(db, s3, |_| {}).await
    }

    async fn start_with(db: TestDb, s3: bool, adjust: impl FnOnce(&mut AvatarConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = s3.then(S3Server::start);
        let mut avatars = AvatarConfig {
            dir: dir.path().to_owned(),
            s3: server.as_ref().map(|s| s.settings(CDN)),
            ..AvatarConfig::default()
        };
        adjust(&mut avatars);
        let storage = server
            .as_ref()
            .map(|s| S3Storage::new(&s.settings(CDN)).unwrap());
        let app = App::start_with(
            db,
            ApiConfig {
                avatars,
                ..ApiConfig::default()
            },
        )
        .await;
        Self {
            app,
            dir,
            s3: server.zip(storage),
        }
    }

    /// Every stored avatar file, as `avatars/{org}/{name}`, sorted.
    async fn stored(&self) -> Vec<String> {
        let mut keys = match &self.s3 {
            Some((_, s3)) => s3.keys().await.unwrap(),
            None => walk(self.dir.path())
                .into_iter()
                .map(|p| {
                    let rel = p.strip_prefix(self.dir.path()).unwrap();
                    format!("avatars/{}", rel.display())
                })
                .collect(),
        };
        keys.sort();
        keys
    }

    /// The bytes and content type behind an avatar URL, read as a client would (disk: from
    /// Orgbase; S3: from the bucket, which a CDN would front).
    async fn fetch(&self, url: &str) -> Option<(Vec<u8>, String)> {
        match &self.s3 {
            Some((_, s3)) => {
                let key = url.strip_prefix(CDN).expect("a URL under the public base");
                s3.fetch(key).await.unwrap().map(|(b, t)| (b.to_vec(), t))
            }
            None => {
                let path = url::Url::parse(url).unwrap().path().to_owned();
                let res = self
                    .app
                    .http
                    .get(format!("{}{path}", self.app.base))
                    .send()
                    .await
                    .unwrap();
                if res.status() != StatusCode::OK {
                    return None;
                }
                let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
                Some((res.bytes().await.unwrap().to_vec(), ct))
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn upload_path(org: &str) -> String {
    format!("/api/organizations/{org}/upload-avatar")
}

/// A multipart form with one part `file` holding `bytes`, declared as `declared` type.
pub fn form(bytes: Vec<u8>, declared: &str) -> Form {
    Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name("avatar.png")
            .mime_str(declared)
            .unwrap(),
    )
}

pub async fn upload(app: &App, token: Option<&str>, org: &str, form: Form) -> Answer {
    let mut req = app
        .http
        .post(format!("{}{}", app.base, upload_path(org)))
        .multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

async fn org_json(app: &App, org: &str) -> Value {
    let a = app.get(&format!("/api/organizations/{org}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body
}

async fn an_upload_becomes_the_avatar_everywhere(t: Avatars) {
    let app = &t.app;
    let (org, owner) = app.owned_org("owner@avatar.test").await;
    let before = org_json(app, &org).await;

    // A phone photo: declared as something else, named .png; the bytes decide.
    let a = upload(
        app,
        Some(&owner),
        &org,
        form(images::jpeg(1200, 900), "text/plain"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["success"], true);
    assert_eq!(a.body["message"], "File uploaded successfully");
    let url = a.body["data"]["avatarUrl"].as_str().unwrap().to_owned();
    assert!(url.ends_with("-512.jpg"), "{url}");
    if t.s3.is_some() {
        assert!(url.starts_with(CDN), "{url}");
    } else {
        assert!(url.starts_with(&app.base), "{url}");
    }

    // The organization points at it, one version on.
    let after = org_json(app, &org).await;
    assert_eq!(after["avatarUrl"], url);
    assert_eq!(
        after["version"].as_i64().unwrap(),
        before["version"].as_i64().unwrap() + 1
    );
    assert_eq!(a.body["data"]["version"], after["version"]);

    // The properties API shows it as org_image_url.
    let p = app
        .http
        .patch(format!("{}/v1/orgs/{org}/properties", app.base))
        .header("authorization", format!("Bearer {}", app.key))
        .json(&json!({"updates": {"org_display_name": "With avatar"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), StatusCode::OK);
    let p: Value = p.json().await.unwrap();
    assert_eq!(p["data"]["org_image_url"], url);

    // Two sizes stored, each a square JPEG.
    let stored = t.stored().await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    for size in [512u32, 128] {
        let u = a.body["data"]["sizes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["size"] == size)
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let (bytes, content_type) = t.fetch(&u).await.expect("the stored file");
        assert_eq!(content_type, "image/jpeg");
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (size, size));
    }

    // The same image again: stored once, nothing changes.
    let current = org_json(app, &org).await;
    let again = upload(
        app,
        Some(&owner),
        &org,
        form(images::jpeg(1200, 900), "image/jpeg"),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["data"]["avatarUrl"], url);
    assert_eq!(t.stored().await, stored);
    assert_eq!(org_json(app, &org).await["version"], current["version"]);

    // With an Idempotency-Key, a retry (the same bytes) is replayed from the first; the same
    // key with another image is refused.
    let multipart = |image: &[u8]| {
        let mut body = b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
        body.extend_from_slice(image);
        body.extend_from_slice(b"\r\n--b0undary--\r\n");
        body
    };
    let send = |key: &'static str, body: Vec<u8>| {
        app.http
            .post(format!("{}{}", app.base, upload_path(&org)))
            .bearer_auth(&owner)
            .header("idempotency-key", key)
            .header("content-type", "multipart/form-data; boundary=b0undary")
            .body(body)
            .send()
    };
    let png = multipart(&images::png(300, 300));
    let first = send("avatar-1", png.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotency-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let second = send("avatar-1", png).await.unwrap();
    assert_eq!(second.headers()["idempotency-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
    let other = send("avatar-1", multipart(&images::png(200, 200)))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["code"], "idempotency_key_reused");
    assert_eq!(
        org_json(app, &org).await["avatarUrl"],
        first["data"]["avatarUrl"]
    );
}

fn two_files_again(jpeg: &[u8]) -> Form {
    form(jpeg.to_vec(), "image/jpeg").part("other", Part::bytes(jpeg.to_vec()).file_name("b.jpg"))
}

async fn every_refusal_stores_nothing_and_changes_nothing(t: Avatars) {
    let app = &t.app;
    let (org, owner) = app.owned_org("refused@avatar.test").await;
    let before = org_json(app, &org).await;
    let jpeg = images::jpeg(400, 300);
    let two_files = form(jpeg.clone(), "image/jpeg")
        .part("other", Part::bytes(jpeg.clone()).file_name("b.jpg"));
    let twice =
        form(jpeg.clone(), "image/jpeg").part("file", Part::bytes(jpeg.clone()).file_name("b.jpg"));
    let cases: Vec<(&str, Form, u16, &str)> = vec![
        (
            "SVG",
            form(
                br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#.to_vec(),
                "image/svg+xml",
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "HTML declared as PNG",
            form(
                b"<!doctype html><script>alert(1)</script>".to_vec(),
                "image/png",
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "PDF",
            form(
                b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj".to_vec(),
                "application/pdf",
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "text",
            form(b"hello".to_vec(), "text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            "truncated JPEG",
            form(jpeg[..jpeg.len() / 2].to_vec(), "image/jpeg"),
            422,
            "validation_failed",
        ),
        (
            "corrupt PNG",
            form(
                {
                    let mut b = images::png(64, 64);
                    let n = b.len();
                    b[n / 2..].iter_mut().for_each(|x| *x ^= 0x5a);
                    b
                },
                "image/png",
            ),
            422,
            "validation_failed",
        ),
        (
            "decompression bomb",
            form(images::png_bomb(50_000, 50_000), "image/png"),
            422,
            "validation_failed",
        ),
        (
            "empty part",
            form(Vec::new(), "image/png"),
            422,
            "validation_failed",
        ),
        (
            "no file field",
            Form::new().text("name", "avatar"),
            422,
            "validation_failed",
        ),
        ("two files", two_files, 422, "validation_failed"),
        ("the field twice", twice, 422, "validation_failed"),
        (
            "over the size limit",
            form(vec![0xFF; 5 * 1024 * 1024 + 1], "image/jpeg"),
            413,
            "payload_too_large",
        ),
    ];
    for (what, f, status, code) in cases {
        let a = upload(app, Some(&owner), &org, f).await;
        assert_eq!(a.status.as_u16(), status, "{what}: {}", a.text);
        a.assert_problem(status, code);
    }
    // One file under another field name is a misnamed field, not several files.
    let misnamed = Form::new().part("avatar", Part::bytes(jpeg.clone()).file_name("a.jpg"));
    let a = upload(app, Some(&owner), &org, misnamed).await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(a.body["errors"][0]["field"], "file", "{}", a.text);
    assert_eq!(a.body["errors"][0]["code"], "required", "{}", a.text);
    assert!(
        a.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`avatar`"),
        "{}",
        a.text
    );
    // A part beside the file is refused by name, as a JSON body's unknown field is, and
    // nothing is stored.
    let extra = form(jpeg.clone(), "image/jpeg").text("caption", "team photo");
    let a = upload(app, Some(&owner), &org, extra).await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(
        a.field_errors(),
        [("caption".into(), "unknown_field".into())],
        "{}",
        a.text
    );
    assert_eq!(org_json(app, &org).await["avatarUrl"], Value::Null);
    let two = upload(app, Some(&owner), &org, two_files_again(&jpeg)).await;
    assert_eq!(
        two.body["errors"][0]["code"], "several_files",
        "{}",
        two.text
    );
    // Not multipart at all, and malformed multipart.
    let url = format!("{}{}", app.base, upload_path(&org));
    let json_body = app
        .http
        .post(&url)
        .bearer_auth(&owner)
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = app
        .http
        .post(&url)
        .bearer_auth(&owner)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);

    assert!(t.stored().await.is_empty(), "{:?}", t.stored().await);
    let after = org_json(app, &org).await;
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["avatarUrl"], Value::Null);
}

async fn who_may_upload(t: Avatars) {
    let app = &t.app;
    let (org, owner) = app.owned_org("who@avatar.test").await;
    let (_, other_owner) = app.owned_org("stranger@avatar.test").await;
    let (admin, _) = app.person(&org, "admin@avatar.test", &[2]).await;
    let (viewer, _) = app.person(&org, "viewer@avatar.test", &[5]).await;
    let (partner, partner_key) = crate::partners::partner(app, "Avatar Partner").await;
    let child = crate::partners::child(app, &partner_key, "Avatar Child").await;
    let child = child["id"].as_str().unwrap();
    let jpeg = || form(images::jpeg(64, 64), "image/jpeg");

    let a = upload(app, None, &org, jpeg()).await;
    a.assert_problem(401, "missing_credentials");
    let a = upload(
        app,
        Some("obk_not_a_real_key_at_all_0000000000"),
        &org,
        jpeg(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = upload(app, Some(&other_owner), &org, jpeg()).await;
    a.assert_problem(404, "not_found");
    let a = upload(app, Some(&viewer), &org, jpeg()).await;
    a.assert_problem(403, "forbidden");
    // Another partner's key: 404 for an organization that is not its child.
    let a = upload(app, Some(&partner_key), &org, jpeg()).await;
    a.assert_problem(404, "not_found");
    assert!(t.stored().await.is_empty());

    for (who, token, target) in [
        ("owner", owner.as_str(), org.as_str()),
        ("admin", admin.as_str(), org.as_str()),
        ("platform", app.key.as_str(), org.as_str()),
        ("partner", partner_key.as_str(), child),
    ] {
        let a = upload(app, Some(token), target, jpeg()).await;
        assert_eq!(a.status, StatusCode::OK, "{who}: {}", a.text);
    }
    // The partner's own organization is not a child: the key still reaches it.
    let a = upload(app, Some(&partner_key), &partner, jpeg()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

async fn replacing_and_removing_remove_the_old_files(t: Avatars) {
    let app = &t.app;
    let (org, owner) = app.owned_org("replace@avatar.test").await;
    let (other, other_owner) = app.owned_org("same@avatar.test").await;
    let first = upload(
        app,
        Some(&owner),
        &org,
        form(images::jpeg(300, 300), "image/jpeg"),
    )
    .await;
    let first_url = first.body["data"]["avatarUrl"].as_str().unwrap().to_owned();
    // Another organization with the same picture has files of its own.
    let same = upload(
        app,
        Some(&other_owner),
        &other,
        form(images::jpeg(300, 300), "image/jpeg"),
    )
    .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(t.stored().await.len(), 4);

    let second = upload(
        app,
        Some(&owner),
        &org,
        form(images::png(200, 200), "image/png"),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let second_url = second.body["data"]["avatarUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first_url, second_url);
    // The old files go once the new URL is committed (in the background: wait for it).
    let gone = eventually(|| async { t.fetch(&first_url).await.is_none() }).await;
    assert!(gone, "the replaced avatar's files are still there");
    assert!(t.fetch(&second_url).await.is_some());
    assert!(eventually(|| async { t.stored().await.len() == 4 }).await);

    // A URL of the customer's own replaces the upload: its files go; Orgbase fetches nothing.
    let a = app
        .patch(
            &format!("/api/organizations/{org}"),
            json!({"avatarUrl": "https://images.example.com/logo.png"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(eventually(|| async { t.stored().await.len() == 2 }).await);
    assert!(t.fetch(&second_url).await.is_none());

    // Upload again, then remove it.
    let third = upload(
        app,
        Some(&owner),
        &org,
        form(images::webp(90, 90), "image/webp"),
    )
    .await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text);
    let version = org_json(app, &org).await["version"].as_i64().unwrap();
    let a = app
        .as_(
            Some(&owner),
            Method::DELETE,
            &format!("/api/organizations/{org}/avatar"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    let after = org_json(app, &org).await;
    assert_eq!(after["avatarUrl"], Value::Null);
    assert_eq!(after["version"].as_i64().unwrap(), version + 1);
    assert!(eventually(|| async { t.stored().await.len() == 2 }).await);
    // The other organization's copy was never touched.
    assert!(t
        .fetch(same.body["data"]["avatarUrl"].as_str().unwrap())
        .await
        .is_some());
    // Pointing at another organization's avatar and then dropping it never removes that
    // organization's files (an https base only: a PATCHed avatarUrl must be https).
    let theirs = same.body["data"]["avatarUrl"].as_str().unwrap().to_owned();
    if theirs.starts_with("https://") {
        let a = app
            .patch(
                &format!("/api/organizations/{org}"),
                json!({"avatarUrl": theirs}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let a = app
            .as_(
                Some(&owner),
                Method::DELETE,
                &format!("/api/organizations/{org}/avatar"),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            t.fetch(&theirs).await.is_some(),
            "another organization's avatar was removed"
        );
    }
    // Removing again: nothing to remove, still 204.
    let a = app
        .as_(
            Some(&owner),
            Method::DELETE,
            &format!("/api/organizations/{org}/avatar"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
}

async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

crate::api_tests!(
    disk_avatars_are_served_safely,
    a_deleted_organization_takes_no_avatar,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_changes_nothing() {
    // The avatar folder is a file: every write fails.
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let path = blocker.path().to_owned();
    let t = Avatars::start_with(orgbase_store::testing::sqlite().await, false, |c| {
        c.dir = path
    })
    .await;
    storage_failure_changes_nothing(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bucket_changes_nothing() {
    let t = Avatars::start_with(orgbase_store::testing::sqlite().await, true, |c| {
        if let Some(s3) = &mut c.s3 {
            s3.bucket = "no-such-bucket".into();
        }
    })
    .await;
    storage_failure_changes_nothing(&t).await;
}

async fn storage_failure_changes_nothing(t: &Avatars) {
    let (org, owner) = t.app.owned_org("failing@avatar.test").await;
    let before = org_json(&t.app, &org).await;
    let a = upload(
        &t.app,
        Some(&owner),
        &org,
        form(images::jpeg(64, 64), "image/jpeg"),
    )
    .await;
    a.assert_problem(503, "unavailable");
    assert_eq!(org_json(&t.app, &org).await, before);
    assert!(t.stored().await.is_empty());
}

async fn disk_avatars_are_served_safely(app: App) {
    let (org, owner) = app.owned_org("serve@avatar.test").await;
    let a = upload(
        &app,
        Some(&owner),
        &org,
        form(images::jpeg(64, 64), "image/jpeg"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let url = a.body["data"]["avatarUrl"].as_str().unwrap();
    let path = url::Url::parse(url).unwrap().path().to_owned();
    let res = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    let etag = h["etag"].to_str().unwrap().to_owned();
    let again = app
        .http
        .get(format!("{}{path}", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // A 304 updates what a cache keeps: it carries the same caching, never the default no-store.
    assert_eq!(
        again.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );

    // No listing, no traversal, nothing but our own names.
    for bad in [
        format!("/avatars/{org}/"),
        format!("/avatars/{org}"),
        "/avatars/".to_owned(),
        format!("/avatars/{org}/..%2f..%2fCargo.toml"),
        format!("/avatars/{org}/%2e%2e/Cargo.toml"),
        "/avatars/../Cargo.toml".to_owned(),
        format!(
            "/avatars/{org}/{}",
            path.rsplit('/').next().unwrap().replace("512", "999")
        ),
        format!("/avatars/not-a-uuid/{}", path.rsplit('/').next().unwrap()),
    ] {
        let res = app
            .http
            .get(format!("{}{bad}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}

async fn a_deleted_organization_takes_no_avatar(app: App) {
    let (org, owner) = app.owned_org("deleted@avatar.test").await;
    let a = app
        .as_(
            Some(&owner),
            Method::DELETE,
            &format!("/api/organizations/{org}"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    // Gone for the owner; a conflict for the platform, which still sees it.
    let a = upload(
        &app,
        Some(&owner),
        &org,
        form(images::jpeg(64, 64), "image/jpeg"),
    )
    .await;
    a.assert_problem(404, "not_found");
    let a = upload(
        &app,
        Some(&app.key),
        &org,
        form(images::jpeg(64, 64), "image/jpeg"),
    )
    .await;
    a.assert_problem(409, "organization_deleted");
}
