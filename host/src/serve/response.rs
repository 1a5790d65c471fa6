//! Response bodies, headers the spec names, and its JSON error form.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::ServeError;
use crate::store::Digest;

/// Every response body: in memory, or streamed from the store.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub const DIGEST_HEADER: &str = "docker-content-digest";
pub const UPLOAD_UUID_HEADER: &str = "docker-upload-uuid";
pub const JSON: &str = "application/json";

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A header value from text we made (digests, numbers, paths of valid names).
pub fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header values made by the server are visible ASCII")
}

/// `status` with a JSON document.
pub fn json(status: StatusCode, doc: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(doc).expect("JSON values serialize");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, JSON)
        .header(CONTENT_LENGTH, bytes.len())
        .body(full(bytes))
        .expect("a valid response")
}

/// The digest headers of content: `Docker-Content-Digest` and a strong `ETag`.
pub fn with_digest(builder: hyper::http::response::Builder, digest: &Digest) -> hyper::http::response::Builder {
    let d = digest.to_string();
    builder.header(DIGEST_HEADER, value(&d)).header(hyper::header::ETAG, value(&format!("\"{d}\"")))
}

pub use crate::error_chain as chain;

/// The spec's error body: `{"errors": [{"code", "message", "detail"}]}`.
pub fn error(err: &ServeError) -> Response<Body> {
    let (status, code) = err.status_and_code();
    let detail = match err {
        ServeError::BlobUnknown { digest } => serde_json::json!({ "digest": digest.to_string() }),
        ServeError::ManifestBlobUnknown { digest } => serde_json::json!({ "digest": digest }),
        ServeError::NameInvalid { name, .. } | ServeError::NameUnknown { name, .. } => {
            serde_json::json!({ "name": name })
        }
        _ => serde_json::json!({}),
    };
    let doc = serde_json::json!({ "errors": [{ "code": code, "message": chain(err), "detail": detail }] });
    let mut response = json(status, &doc);
    let headers = response.headers_mut();
    match err {
        ServeError::Unauthorized => {
            headers.insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"berth serve\""));
        }
        ServeError::RangeNotSatisfiable { size, .. } => {
            headers.insert(hyper::header::CONTENT_RANGE, value(&format!("bytes */{size}")));
        }
        _ => {}
    }
    response
}
