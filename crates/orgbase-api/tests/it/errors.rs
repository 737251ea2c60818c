use crate::App;
use orgbase_api::ApiConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn malformed_json_is_400(app: App) {
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json"),
            b"{\"name\": ".to_vec(),
        )
        .await;
    a.assert_problem(400, "malformed_json");
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json"),
            Vec::new(),
        )
        .await;
    a.assert_problem(400, "malformed_json");
}

async fn wrong_or_missing_content_type_is_415(app: App) {
    let body = br#"{"name":"A","countryCode":"US"}"#.to_vec();
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("text/plain"),
            body.clone(),
        )
        .await;
    a.assert_problem(415, "unsupported_media_type");
    let a = app
        .raw(Method::POST, "/api/organizations", None, body.clone())
        .await;
    a.assert_problem(415, "unsupported_media_type");
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json; charset=utf-8"),
            body.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/merge-patch+json"),
            br#"{"name":"B","countryCode":"US"}"#.to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

async fn a_body_that_is_not_an_object_is_422(app: App) {
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json"),
            b"[1,2]".to_vec(),
        )
        .await;
    a.assert_problem(422, "invalid_body");
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json"),
            b"\"x\"".to_vec(),
        )
        .await;
    a.assert_problem(422, "invalid_body");
}

async fn oversized_bodies_are_413_and_change_nothing(db: orgbase_store::testing::TestDb) {
    let app = App::start_with(
        db,
        ApiConfig {
            body_limit: 2048,
            ..ApiConfig::default()
        },
    )
    .await;
    let big = json!({"name": "A", "countryCode": "US", "metadata": {"k": "x".repeat(4000)}});
    let a = app.post("/api/organizations", big).await;
    a.assert_problem(413, "payload_too_large");
    assert_eq!(app.get("/api/organizations").await.body["data"], json!([]));
}

async fn unknown_routes_and_methods_are_problems(app: App) {
    let a = app.get("/api/nothing-here").await;
    a.assert_problem(404, "not_found");
    let a = app
        .call(
            Method::PUT,
            "/api/organizations",
            Some(&app.key),
            Some(&json!({})),
            &[],
        )
        .await;
    a.assert_problem(405, "method_not_allowed");
}

async fn no_permissive_cors(app: App) {
    let a = app
        .call(
            Method::GET,
            "/api/organizations",
            Some(&app.key),
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.header("access-control-allow-origin").is_none());
    let pre = app
        .call(
            Method::OPTIONS,
            "/api/organizations",
            None,
            None,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert!(pre.header("access-control-allow-origin").is_none());
}

async fn every_answer_carries_nosniff_no_store_and_a_request_id(app: App) {
    for a in [
        app.get("/healthz").await,
        app.get("/api/organizations").await,
        app.call(Method::GET, "/api/organizations", None, None, &[])
            .await,
        app.get("/nowhere").await,
    ] {
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert!(a.header("x-request-id").is_some_and(|v| v.len() >= 32));
    }
    // A caller's own request id is kept, so that it can follow its request through our logs.
    let a = app
        .call(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "trace-me-123")],
        )
        .await;
    assert_eq!(a.header("x-request-id"), Some("trace-me-123"));
}

async fn oversized(app: App) {
    // The default limit (1 MiB) applies without configuration.
    let big = json!({"name": "A", "countryCode": "US", "metadata": {"k": "x".repeat(1_100_000)}});
    app.post("/api/organizations", big)
        .await
        .assert_problem(413, "payload_too_large");
}

crate::api_tests!(
    malformed_json_is_400,
    wrong_or_missing_content_type_is_415,
    a_body_that_is_not_an_object_is_422,
    unknown_routes_and_methods_are_problems,
    no_permissive_cors,
    every_answer_carries_nosniff_no_store_and_a_request_id,
    oversized,
);

mod limit {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::oversized_bodies_are_413_and_change_nothing(orgbase_store::testing::sqlite().await)
            .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(db) = orgbase_store::testing::postgres().await else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return;
        };
        super::oversized_bodies_are_413_and_change_nothing(db).await;
    }
}

/// A handler that panics answers a 500 problem with the request id and nothing of the panic.
mod panics {
    use orgbase_api::{with_layers, ApiConfig, AppState};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_a_500_problem_without_internals() {
        let db = orgbase_store::testing::sqlite().await;
        let outbox = tempfile::tempdir().unwrap();
        let state = AppState::new(
            db.store.clone(),
            ApiConfig {
                mail_outbox: outbox.path().to_owned(),
                ..ApiConfig::default()
            },
            Default::default(),
        )
        .unwrap();
        let routes = axum::Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("secret internal detail");
                }
                "unreachable"
            }),
        );
        let app = with_layers(routes, state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let res = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
        assert_eq!(res.status(), 500);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let text = res.text().await.unwrap();
        assert!(!text.contains("secret internal detail"), "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["code"], "internal_error");
        assert_eq!(body["requestId"], id.as_str());
        // The server lives on.
        let res = reqwest::get(format!("http://{addr}/nothing"))
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
}

/// A database that fails under the app: a 500 problem with the request id, no SQL, no table
/// names; and readiness reports it.
mod database_failure {
    use crate::App;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(db) = orgbase_store::testing::postgres().await else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return;
        };
        let url = db.url.clone();
        let app = App::start(db).await;
        let o = app
            .org(serde_json::json!({"name": "Acme", "countryCode": "US"}))
            .await;
        let out = std::process::Command::new("psql")
            .args([
                url.as_str(),
                "-qc",
                "ALTER TABLE organizations RENAME TO organizations_gone",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = app
            .get(&format!("/api/organizations/{}", o["id"].as_str().unwrap()))
            .await;
        a.assert_problem(500, "internal_error");
        assert!(
            !a.text.contains("organizations_gone") && !a.text.contains("relation"),
            "{}",
            a.text
        );
        let out = std::process::Command::new("psql")
            .args([
                url.as_str(),
                "-qc",
                "ALTER TABLE organizations_gone RENAME TO organizations",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let a = app
            .get(&format!("/api/organizations/{}", o["id"].as_str().unwrap()))
            .await;
        assert_eq!(a.status, 200);
    }
}

/// The README's error table is the code's own list, and the list covers the codes the source
/// writes (answers the tests receive are checked against it in `Answer::check_code_is_listed`).
mod error_table {
    use orgbase_api::error_codes::{markdown_summary, markdown_table, status_of, ERROR_CODES};
    use std::path::{Path, PathBuf};

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

    /// The text between `<!-- error-codes:begin -->` and `<!-- error-codes:end -->` in `file`.
    fn marked(file: &str) -> String {
        let text = std::fs::read_to_string(format!("{ROOT}/{file}")).unwrap();
        let (begin, end) = ("<!-- error-codes:begin -->\n", "<!-- error-codes:end -->");
        let start = text.find(begin).expect("the error codes are marked") + begin.len();
        let stop = text[start..].find(end).expect("the end marker") + start;
        text[start..stop].to_owned()
    }

    #[test]
    fn the_readme_and_docs_tables_are_the_list() {
        assert_eq!(
            marked("README.md"),
            markdown_summary(),
            "README.md's error codes differ from orgbase_api::error_codes::ERROR_CODES; put \
             this between its markers:\n{}",
            markdown_summary()
        );
        assert_eq!(
            marked("docs/errors.md"),
            markdown_table(),
            "docs/errors.md differs from orgbase_api::error_codes::ERROR_CODES; put this \
             between its markers:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn each_code_is_listed_once_and_written_somewhere() {
        let sources = rust_sources();
        for (i, e) in ERROR_CODES.iter().enumerate() {
            assert!(
                ERROR_CODES[..i].iter().all(|o| o.code != e.code),
                "{} twice",
                e.code
            );
            let quoted = format!("\"{}\"", e.code);
            assert!(
                sources
                    .iter()
                    .any(|(p, s)| !p.ends_with("error_codes.rs") && s.contains(&quoted)),
                "`{}` is listed but nothing answers it",
                e.code
            );
        }
    }

    #[test]
    fn every_code_the_source_writes_is_listed() {
        for (path, text) in rust_sources() {
            if path.ends_with("error_codes.rs")
                || path.components().any(|c| c.as_os_str() == "tests")
            {
                continue;
            }
            let mut found = Vec::new();
            for prefix in ["code: ", "gone(", "=> ("] {
                found.extend(literals_after(&text, prefix));
            }
            // `(StatusCode::CONFLICT, "code", …)`
            for (i, _) in text.match_indices("StatusCode::") {
                let rest = text[i + "StatusCode::".len()..]
                    .trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
                if let Some(rest) = rest.strip_prefix(',') {
                    found.extend(literal(rest.trim_start()));
                }
            }
            for code in found {
                assert!(
                    status_of(&code).is_some(),
                    "{}: `{code}` is not in orgbase_api::error_codes::ERROR_CODES",
                    path.display()
                );
            }
        }
    }

    fn literals_after(text: &str, prefix: &str) -> Vec<String> {
        text.match_indices(prefix)
            .filter_map(|(i, _)| literal(text[i + prefix.len()..].trim_start()))
            .collect()
    }

    /// The snake_case string literal `s` starts with.
    fn literal(s: &str) -> Option<String> {
        let body = s.strip_prefix('"')?;
        let end = body.find('"')?;
        let word = &body[..end];
        (!word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .then(|| word.to_owned())
    }

    fn rust_sources() -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let crates = Path::new(ROOT).join("crates");
        for krate in std::fs::read_dir(crates).unwrap() {
            walk(&krate.unwrap().path().join("src"), &mut out);
        }
        out
    }

    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
}
