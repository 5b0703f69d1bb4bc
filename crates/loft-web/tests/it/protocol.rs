//! What every route shares: authentication, body parsing, error format, OpenAPI.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::{App, assert_error};

#[tokio::test]
async fn health_needs_no_key() {
    let app = App::new().await;
    let r = app.call(Method::GET, "/v0/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["backend"], "sqlite");
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let app = App::new().await;
    let r = app.call(Method::GET, "/v0/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        r.body["openapi"]
    );
    let paths = r.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v0/health", "get"),
        ("/v0/identities", "post"),
        ("/v0/identities", "get"),
        ("/v0/identities/{id}", "get"),
        ("/v0/identities/{id}", "patch"),
        ("/v0/identities/{id}/revoke", "post"),
        ("/v0/identities/{id}/keys", "get"),
        ("/v0/identities/{id}/keys", "post"),
        ("/v0/identities/{id}/keys/rotate", "post"),
        ("/v0/keys", "get"),
        ("/v0/keys", "post"),
        ("/v0/keys/rotate", "post"),
        ("/v0/keys/{key_id}", "delete"),
        ("/v0/whoami", "get"),
        ("/v0/messages/send", "post"),
        ("/v0/messages", "get"),
        ("/v0/messages/wait", "get"),
        ("/v0/messages/{id}", "get"),
        ("/v0/messages/{id}", "patch"),
        ("/v0/messages/{id}/raw", "get"),
        ("/v0/messages/{id}/reply", "post"),
        ("/v0/threads", "get"),
        ("/v0/threads/{id}", "get"),
        ("/v0/threads/{id}", "patch"),
        ("/v0/threads/{id}", "delete"),
        ("/v0/messages/{id}", "delete"),
        ("/v0/audit", "get"),
        ("/v0/audit/export", "get"),
        ("/v0/audit/head", "get"),
        ("/v0/audit/verify", "get"),
        ("/v0/vault", "post"),
        ("/v0/vault", "get"),
        ("/v0/vault/{name}", "get"),
        ("/v0/vault/{name}", "patch"),
        ("/v0/vault/{name}", "delete"),
        ("/v0/vault/{name}/totp", "get"),
        ("/v0/vault/{name}/totp/backup", "post"),
        ("/v0/vault/{name}/http", "post"),
        ("/v0/vault/rotate-master-key", "post"),
        ("/v0/rules", "get"),
        ("/v0/rules", "post"),
        ("/v0/rules/{id}", "delete"),
        ("/v0/approvals/{id}/edit", "post"),
        ("/v0/oversight/mode-request", "post"),
        ("/v0/oversight/mode-requests", "get"),
        ("/v0/oversight/mode-requests/{identity_id}/deny", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the document"
        );
    }
    assert!(r.body["components"]["schemas"]["Message"].is_object());
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let app = App::new().await;
    let r = app.get("/v0/nope", &app.admin).await;
    assert_error(&r, StatusCode::NOT_FOUND, "no_route");
    let r = app.call(Method::DELETE, "/v0/whoami", Some(&app.admin), None).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn refused_keys_get_401_and_are_audited() {
    let app = App::new().await;
    let r = app.call(Method::GET, "/v0/whoami", None, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert!(r.body["error"]["hint"].as_str().unwrap().contains("Bearer"));

    let basic = Request::get("/v0/whoami")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty());
    assert_error(
        &app.raw(basic.unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );

    let malformed = "loft_sk_tooshort_abc";
    let r = app.get("/v0/whoami", malformed).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(!r.text.contains("tooshort"), "the key is echoed: {}", r.text);

    let unknown = format!("loft_sk_{}_{}", "a".repeat(16), "b".repeat(52));
    let r = app.get("/v0/whoami", &unknown).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(!r.text.contains(&"b".repeat(52)));
    let r = app.get("/v0/whoami", "not-the-admin-key-but-long-enough").await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Refusals are counted per client address and written as one row per address and
    // minute, never naming a key id read from a token that did not verify.
    app.loft.flush_auth_refusals(true).await.unwrap();
    let audit = app.get("/v0/audit?action=auth.refused", &app.admin).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let rows = audit.body["items"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", audit.text);
    assert_eq!(rows[0]["outcome"], "denied");
    assert_eq!(rows[0]["details"]["count"], 4, "{}", audit.text);
    assert_eq!(rows[0]["key_id"], serde_json::Value::Null);
    assert!(!audit.text.contains(&"a".repeat(16)));
    assert!(!audit.text.contains(&"b".repeat(52)));
}

#[tokio::test]
async fn request_ids_are_echoed_and_taken_from_the_client() {
    let app = App::new().await;
    let req = Request::get("/v0/whoami")
        .header("x-request-id", "trace-42")
        .body(Body::empty())
        .unwrap();
    let r = app.raw(req).await;
    assert_eq!(r.headers["x-request-id"], "trace-42");
    assert_eq!(r.body["error"]["request_id"], "trace-42");
    let r = app.get("/v0/whoami", &app.admin).await;
    assert!(r.headers["x-request-id"].to_str().unwrap().starts_with("req_"));
}

#[tokio::test]
async fn json_body_without_content_type_or_as_curl_form_is_accepted() {
    let app = App::new().await;
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=utf-8"),
    ] {
        let mut req = Request::post("/v0/identities").header(header::AUTHORIZATION, format!("Bearer {}", app.admin));
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let r = app.raw(req.body(Body::from(r#"{"name":"researcher"}"#)).unwrap()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{ct:?}: {}", r.text);
    }
    let req = Request::post("/v0/identities")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=x")
        .body(Body::from("--x--"))
        .unwrap();
    assert_error(
        &app.raw(req).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn bad_bodies_get_precise_errors() {
    let app = App::new().await;
    let send = |body: &'static str| {
        Request::post("/v0/identities")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
            .body(Body::from(body))
            .unwrap()
    };
    let r = app.raw(send(r#"{"name": "x",}"#)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "malformed_json");
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("line 1"),
        "{}",
        r.text
    );

    let r = app.raw(send(r#"{"name": "x", "nmae": "y"}"#)).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(r.text.contains("nmae"), "{}", r.text);

    let r = app.raw(send(r#"{"display_name": "x"}"#)).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(r.text.contains("name"), "{}", r.text);

    let r = app.raw(send(r#"{"name": 5}"#)).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(r.text.contains("name"), "{}", r.text);

    let r = app.raw(send("")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "missing_body");

    let r = app.raw(send(r#"{"name": "x"} trailing"#)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "malformed_json");

    // Nothing was created by any of these.
    let list = app.get("/v0/identities", &app.admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0, "{}", list.text);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = App::with_limit(1024).await;
    let (_, addr, key) = app.identity("writer").await;
    let big = "x".repeat(4096);
    let r = app
        .post(
            "/v0/messages/send",
            &key,
            json!({ "to": addr, "subject": "big", "text": big }),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("1024"));
    let list = app.get("/v0/messages?folder=all", &key).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_query_parameters_are_named() {
    let app = App::new().await;
    let (_, _, key) = app.identity("reader").await;
    let r = app.get("/v0/messages?limt=5", &key).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");
    assert!(r.text.contains("limt"), "{}", r.text);
    let r = app.get("/v0/messages?limit=0", &key).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_limit");
    let r = app.get("/v0/messages?limit=lots", &key).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");
    let r = app.get("/v0/messages?cursor=garbage", &key).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor");
    let r = app.get("/v0/messages?folder=spam", &key).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_folder");
}

/// Every operation documents the error answers it can give, with Loft's error body.
#[tokio::test]
async fn every_operation_documents_its_errors() {
    let app = App::new().await;
    let doc = &app.doc;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let public = path == "/v0/health" || path == "/v0/openapi.json";
            let needed: &[&str] = if public {
                &["500"]
            } else {
                &["400", "401", "403", "422", "429", "500", "503"]
            };
            for status in needed {
                let r = responses
                    .get(*status)
                    .unwrap_or_else(|| panic!("{method} {path} does not list {status}"));
                assert!(r["content"]["application/json"].is_object(), "{method} {path} {status}");
            }
            operations += 1;
        }
    }
    // OpenAPI requires a description on every response.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().unwrap() {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    assert!(operations > 30, "{operations}");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

/// The README's route table and the OpenAPI document list the same routes.
#[tokio::test]
async fn the_readme_route_table_matches_the_document() {
    let app = App::new().await;
    let readme = include_str!("../../../../README.md");
    let mut in_readme = std::collections::BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `") && l.contains(" /v0/")) {
        for span in line.split('`').skip(1).step_by(2) {
            let Some((methods, path)) = span.split_once(' ') else {
                continue;
            };
            if !path.starts_with("/v0/") {
                continue;
            }
            for m in methods.split('/') {
                in_readme.insert(format!("{} {path}", m.to_ascii_lowercase()));
            }
        }
    }
    let mut in_doc = std::collections::BTreeSet::new();
    for (path, item) in app.doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            in_doc.insert(format!("{method} {path}"));
        }
    }
    in_doc.insert("get /v0/openapi.json".to_owned()); // served beside the document, not in it
    let missing: Vec<_> = in_doc.difference(&in_readme).collect();
    let extra: Vec<_> = in_readme.difference(&in_doc).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the README's table: {missing:?}"
    );
    assert!(extra.is_empty(), "README routes the server does not have: {extra:?}");
}

/// A validator for the request body `name` of the served document (its `$ref`s resolved in it).
fn body_validator(doc: &serde_json::Value, name: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{name} is not a valid JSON Schema: {e}"))
}

/// The request schemas say what the server checks: bodies the server refuses for a rule it can
/// state are invalid by the document, and bodies it takes are valid (never stricter than the
/// server), with the patterns read as ECMA-262 and held against Loft's own parsers.
#[tokio::test]
async fn openapi_request_schemas_state_what_the_server_checks() {
    let app = App::new().await;
    let doc = app.call(Method::GET, "/v0/openapi.json", None, None).await.body;
    let schemas = &doc["components"]["schemas"];

    // Addresses: one or a list, `format: email`, at most MAX_RECIPIENTS.
    let to = &schemas["SendMail"]["allOf"][0]["properties"]["to"]["oneOf"];
    assert_eq!(to[0]["format"], "email", "{to}");
    assert_eq!(to[1]["items"]["format"], "email", "{to}");
    assert_eq!(to[1]["maxItems"], loft_core::mail::MAX_RECIPIENTS, "{to}");
    let send = body_validator(&doc, "SendMail");
    for ok in [
        json!({"to": "a@example.com", "subject": "hi", "text": "body"}),
        json!({"to": ["a@example.com", "b@example.com"], "subject": "", "html": "<p>x</p>"}),
        json!({"to": [], "cc": "c@example.com", "subject": "s", "text": "t"}),
    ] {
        assert!(send.is_valid(&ok), "{ok}");
    }
    for bad in [
        json!({"to": [], "subject": "s", "text": "t"}),
        json!({"to": "a@example.com", "subject": "s", "text": " \n\t"}),
        json!({"to": "a@example.com", "subject": "two\nlines", "text": "t"}),
        json!({"to": "a@example.com", "subject": "s", "text": "nul\0"}),
        json!({"to": "a@example.com", "subject": "x".repeat(999), "text": "t"}),
        json!({"to": "not an address", "subject": "s", "text": "t"}),
        json!({"to": "a@example.com", "subject": "s", "text": "t", "bogus": 1}),
    ] {
        assert!(!send.is_valid(&bad), "{bad}");
    }

    // Labels: the pattern accepts exactly what `parse_label` does.
    let patch = body_validator(&doc, "MessagePatch");
    assert!(!patch.is_valid(&json!({})), "nothing to change");
    assert!(!patch.is_valid(&json!({"add_labels": [], "unread": null})));
    assert!(patch.is_valid(&json!({"unread": false})));
    for label in [
        "work",
        " Work/Q4 ",
        "a:b.c-d_e",
        "",
        " ",
        "a b",
        "é",
        "x\u{2028}",
        &"x".repeat(64),
        &"x".repeat(65),
        "\u{85}ok\u{3000}",
        "\u{feff}ok",
    ] {
        assert_eq!(
            patch.is_valid(&json!({"add_labels": [label]})),
            loft_core::mail::parse_label(label).is_ok(),
            "label {label:?}"
        );
    }
    let too_many: Vec<String> = (0..=loft_core::mail::MAX_LABELS_PER_MESSAGE)
        .map(|i| format!("l{i}"))
        .collect();
    assert!(!patch.is_valid(&json!({ "add_labels": too_many })));

    // Credential names, as `validate_name` reads them; a name or a label, not both.
    let store = body_validator(&doc, "StoreCredentialRequest");
    for name in [
        "crm",
        " crm\t",
        "GitHub-token.v2",
        "-crm",
        "",
        "a/b",
        &"n".repeat(64),
        &"n".repeat(65),
    ] {
        assert_eq!(
            store.is_valid(&json!({"name": name, "value": "some-secret-value"})),
            loft_core::vault::validate_name(name).is_ok(),
            "name {name:?}"
        );
    }
    assert!(!store.is_valid(&json!({"value": "v"})), "a name is needed");
    assert!(!store.is_valid(&json!({"name": "a", "label": "b", "value": "v"})));
    for (field, ok, bad) in [
        ("digits", json!(8), json!(9)),
        ("period", json!(86_400), json!(0)),
        ("algorithm", json!("SHA256"), json!("MD5")),
        ("expires_at", json!("2027-01-01T00:00:00Z"), json!("next week")),
        ("expires_at", json!(""), json!("2027-13-01")),
        ("type", json!("totp"), json!("password")),
        ("backup_codes", json!("one-code"), json!(vec!["c"; 101])),
        ("issuer", json!("Example"), json!("nul\0")),
    ] {
        assert!(store.is_valid(&json!({"name": "otp", field: ok})), "{field}: {ok}");
        assert!(!store.is_valid(&json!({"name": "otp", field: bad})), "{field}: {bad}");
    }
    // An update takes no name: the server refuses one.
    let update = body_validator(&doc, "UpdateCredentialRequest");
    assert!(update.is_valid(&json!({"notes": "n"})));
    assert!(!update.is_valid(&json!({"name": "crm"})));
    let patch_body = &doc["paths"]["/v0/vault/{name}"]["patch"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(patch_body["$ref"], "#/components/schemas/UpdateCredentialRequest");

    // Keys: scopes are the Scope enum; a label is 64 printable characters once trimmed.
    let key = body_validator(&doc, "CreateKeyRequest");
    assert!(key.is_valid(&json!({"scopes": ["mail:read", "vault:reveal"], "label": " ci "})));
    assert!(!key.is_valid(&json!({"scopes": ["mail:everything"]})));
    assert!(key.is_valid(&json!({ "label": format!(" {} ", "k".repeat(64)) })));
    assert!(!key.is_valid(&json!({ "label": "k".repeat(65) })));
    assert!(!key.is_valid(&json!({"label": "tab\tinside"})));
}

/// Every `{name}` in a documented path is declared as a path parameter of each of its
/// operations (utoipa keeps only one `params(...)` per route: a second one silently drops
/// the first, which generated clients and schemathesis then cannot call).
#[tokio::test]
async fn every_path_template_parameter_is_declared() {
    let app = App::new().await;
    let mut missing = Vec::new();
    for (path, item) in app.doc["paths"].as_object().unwrap() {
        let names: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|p| p.split_once('}').map(|(n, _)| n))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            for name in &names {
                let declared = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["name"] == *name);
                if !declared {
                    missing.push(format!("{method} {path}: {name}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undeclared path parameters: {missing:?}");
}
