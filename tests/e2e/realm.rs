//! A registry's Bearer challenge may name any token realm; berth sends requests and
//! credentials only to the registry's own site, or to a realm the user listed in
//! registries.toml (`token-realms`). Two fake servers on 127.0.0.1 and 127.0.0.2: the
//! "registry" challenges every request, the "realm" records who asked it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use crate::support::Root;

/// Answer every request with `status` and these headers; remember each request's lines.
fn serve(listener: TcpListener, status: &'static str, headers: String) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                request.push_str(&line);
            }
            log.lock().unwrap().push(request);
            let body = r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    seen
}

#[test]
fn a_token_realm_on_another_host_gets_no_request_and_no_credentials_unless_listed() {
    let realm = TcpListener::bind("127.0.0.2:0").expect("127.0.0.2 is loopback on Linux");
    let realm_addr = realm.local_addr().unwrap();
    let realm_seen = serve(realm, "401 Unauthorized", String::new());
    let registry = TcpListener::bind("127.0.0.1:0").unwrap();
    let registry_addr = registry.local_addr().unwrap();
    let challenge =
        format!("WWW-Authenticate: Bearer realm=\"http://{realm_addr}/token\",service=\"r\",scope=\"x\"\r\n");
    let _registry_seen = serve(registry, "401 Unauthorized", challenge);

    let root = Root::new();
    let auth = root.path().join("auth.json");
    let secret = base64::engine::general_purpose::STANDARD.encode("me:s3cret");
    std::fs::write(&auth, format!(r#"{{"auths":{{"{registry_addr}":{{"auth":"{secret}"}}}}}}"#)).unwrap();
    let point = format!("docker://{registry_addr}/app:v1");
    let auth_arg = auth.display().to_string();

    let (code, _, err) = root.run(&["fetch", "--authfile", &auth_arg, &point]);
    assert_eq!(code, 4, "refused as a denial: {err}");
    assert!(err.contains("token-realms") && err.contains(&realm_addr.to_string()), "names the fix: {err}");
    assert!(realm_seen.lock().unwrap().is_empty(), "the foreign realm was never contacted");

    // Listed by the user: the realm is asked, with the registry's credentials.
    let conf = root.path().join("registries.toml");
    std::fs::write(
        &conf,
        format!("[[registry]]\nprefix = \"{registry_addr}\"\ninsecure = true\ntoken-realms = [\"{realm_addr}\"]\n"),
    )
    .unwrap();
    let (code, _, err) =
        root.run(&["fetch", "--authfile", &auth_arg, "--registries-conf", &conf.display().to_string(), &point]);
    assert_eq!(code, 4, "the realm refuses the credentials: {err}");
    let asked = realm_seen.lock().unwrap().join("\n");
    assert!(
        asked.contains(&format!("Basic {secret}")) || asked.to_ascii_lowercase().contains("authorization: basic"),
        "{asked}"
    );
}
