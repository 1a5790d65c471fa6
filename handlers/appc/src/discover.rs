//! Discovery over the host's transport. The handler always asks for `https://` URLs;
//! the host falls back to plain HTTP where the user allowed it, and follows redirects.

use berth_aci::Aci;
use berth_appc_spec::discovery::{self, App, Attempt, Discovered, Endpoint};
use berth_guest::Error;
use berth_guest::berth::handler::log::{self, Level};
use berth_guest::berth::handler::transport::{self, HttpRequest};

/// GET a discovery URL: the body of a 200 answer, any other status is an error.
fn get(url: &str) -> Result<String, Error> {
    let response = transport::request(&HttpRequest {
        method: "GET".into(),
        url: url.to_string(),
        headers: vec![("Accept".into(), "text/html, application/xhtml+xml;q=0.9, */*;q=0.8".into())],
        body: None,
    })?;
    match response.status {
        200 => Ok(String::from_utf8_lossy(&response.body).into_owned()),
        status => Err(status_error(status, &response.url)),
    }
}

/// The error of a discovery URL that did not answer 200. The spec moves on to the
/// parent path after any of them; the kind matters only if every path fails.
fn status_error(status: u16, url: &str) -> Error {
    let text = format!("{url} answered {status}");
    match status {
        401 | 403 => Error::Unauthorized(text),
        500..=599 => Error::Unavailable(text),
        _ => Error::NotFound(text),
    }
}

fn message(e: &Error) -> String {
    match e {
        Error::NotFound(m)
        | Error::Unauthorized(m)
        | Error::Denied(m)
        | Error::Unsupported(m)
        | Error::InvalidInput(m)
        | Error::Unavailable(m)
        | Error::Io(m) => m.clone(),
        Error::DigestMismatch(m) => format!("{} is {}, not {}", m.subject, m.actual, m.expected),
    }
}

/// One error for a discovery that found nothing: a denial (a grant the user can add)
/// wins, then an unreachable source when nothing answered, else "not found". The
/// message lists every URL tried and what it gave.
fn failed(what: &str, name: &str, attempts: Vec<Attempt<Error>>) -> Error {
    let tried: Vec<String> = attempts
        .iter()
        .map(|a| match &a.error {
            None => format!("{}: no matching {what}", a.url),
            Some(e) => format!("{}: {}", a.url, message(e)),
        })
        .collect();
    let text = format!("appc discovery of {name} found no {what}; tried {}", tried.join("; "));
    let errors: Vec<&Error> = attempts.iter().filter_map(|a| a.error.as_ref()).collect();
    if errors.iter().any(|e| matches!(e, Error::Denied(_))) {
        Error::Denied(text)
    } else if errors.iter().any(|e| matches!(e, Error::Unauthorized(_))) {
        Error::Unauthorized(text)
    } else if !errors.is_empty()
        && errors.len() == attempts.len()
        && errors.iter().all(|e| matches!(e, Error::Unavailable(_) | Error::Io(_)))
    {
        Error::Unavailable(text)
    } else {
        Error::NotFound(text)
    }
}

fn walk(app: &App, what: &str, enough: impl Fn(&Discovered) -> bool) -> Result<Discovered, Error> {
    discovery::walk(
        app,
        |url| {
            log::log(Level::Debug, &format!("appc discovery: GET {url}"));
            get(url)
        },
        enough,
    )
    .map_err(|attempts| failed(what, &app.name, attempts))
}

/// The key URLs discovery announces for `app`'s name, best first.
pub fn public_keys(app: &App) -> Result<Vec<String>, Error> {
    Ok(walk(app, "ac-discovery-pubkeys", |d| !d.public_keys.is_empty())?.public_keys)
}

/// Discover `app` and store the first of its ACIs that can be fetched. An endpoint that
/// is missing or unreachable gives way to the next; anything else (a bad archive, a
/// denial) stops.
pub fn fetch_image(app: &App) -> Result<(Endpoint, Discovered, Aci), Error> {
    let found = walk(app, "ac-discovery template", |d| !d.endpoints.is_empty())?;
    let mut tried: Vec<(String, Error)> = Vec::new();
    for endpoint in &found.endpoints {
        if !(endpoint.aci.starts_with("https://") || endpoint.aci.starts_with("http://")) {
            log::log(Level::Debug, &format!("appc: skipping {}: not an http(s) URL", endpoint.aci));
            continue;
        }
        match berth_aci::ingest(&endpoint.aci) {
            Ok(aci) => return Ok((endpoint.clone(), found.clone(), aci)),
            Err(e @ (Error::NotFound(_) | Error::Unavailable(_))) => {
                log::log(Level::Info, &format!("appc: {}: {}", endpoint.aci, message(&e)));
                tried.push((endpoint.aci.clone(), e));
            }
            Err(e) => return Err(e),
        }
    }
    match tried.len() {
        0 => Err(Error::Unsupported(format!(
            "appc discovery of {} found only ACI URLs berth cannot fetch (not http or https): {}",
            app.name,
            found.endpoints.iter().map(|e| e.aci.as_str()).collect::<Vec<_>>().join(", ")
        ))),
        1 => Err(tried.remove(0).1),
        _ => {
            let text = format!(
                "no ACI of {} could be fetched: {}",
                app.name,
                tried.iter().map(|(url, e)| format!("{url}: {}", message(e))).collect::<Vec<_>>().join("; ")
            );
            if tried.iter().all(|(_, e)| matches!(e, Error::Unavailable(_))) {
                Err(Error::Unavailable(text))
            } else {
                Err(Error::NotFound(text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(url: &str, error: Option<Error>) -> Attempt<Error> {
        Attempt { url: url.into(), error }
    }

    #[test]
    fn statuses() {
        assert!(matches!(status_error(404, "u"), Error::NotFound(m) if m == "u answered 404"));
        assert!(matches!(status_error(401, "u"), Error::Unauthorized(_)));
        assert!(matches!(status_error(503, "u"), Error::Unavailable(_)));
        assert!(matches!(status_error(302, "u"), Error::NotFound(_)));
    }

    #[test]
    fn a_failed_discovery_lists_every_url_and_keeps_the_telling_kind() {
        let e = failed(
            "ac-discovery template",
            "example.com/app",
            vec![
                attempt("https://example.com/app?ac-discovery=1", None),
                attempt(
                    "https://example.com?ac-discovery=1",
                    Some(status_error(404, "https://example.com?ac-discovery=1")),
                ),
            ],
        );
        let Error::NotFound(m) = e else { panic!("{e:?}") };
        assert_eq!(
            m,
            "appc discovery of example.com/app found no ac-discovery template; tried \
             https://example.com/app?ac-discovery=1: no matching ac-discovery template; \
             https://example.com?ac-discovery=1: https://example.com?ac-discovery=1 answered 404"
        );
        // A denial names a grant the user can add: it wins.
        let e = failed(
            "x",
            "a/b",
            vec![attempt("1", Some(Error::NotFound("n".into()))), attempt("2", Some(Error::Denied("d".into())))],
        );
        assert!(matches!(e, Error::Denied(_)));
        // Unreachable only when nothing answered at all.
        let e = failed(
            "x",
            "a/b",
            vec![attempt("1", Some(Error::Unavailable("u".into()))), attempt("2", Some(Error::Io("i".into())))],
        );
        assert!(matches!(e, Error::Unavailable(_)));
        let e = failed("x", "a/b", vec![attempt("1", Some(Error::Unavailable("u".into()))), attempt("2", None)]);
        assert!(matches!(e, Error::NotFound(_)));
    }
}
