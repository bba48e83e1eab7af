//! Blobs (artifacts, caches) by digest: download, and upload checked against the
//! digest in the path.
//!
//! An upload streams into the blob store's temporary file on a blocking thread while
//! it is hashed; only when the hash matches the path is the blob committed, so a bad
//! or cut-off upload leaves nothing behind.

use crate::AppState;
use crate::auth::{Auth, Developer, Viewer};
use crate::error::{ApiError, Path};
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_store::{BlobStore, Digest, StoreError};
use ferry_types::api::{self, ErrorBody};
use futures_util::StreamExt;
use std::io::Write;
use tokio_util::io::ReaderStream;

fn parse(digest: &str) -> Result<Digest, ApiError> {
    digest.parse().map_err(|_| {
        ApiError::bad_request(format!("`{digest}` is not a blob digest"))
            .hint("use `sha256:` followed by 64 hex digits")
    })
}

fn blob_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(d) => ApiError::not_found("blob", d),
        other => ApiError::internal(other),
    }
}

/// `GET /api/v1/blobs/{digest}`
#[utoipa::path(get, path = "/api/v1/blobs/{digest}", tag = "blobs",
    params(("digest" = String, Path, description = "`sha256:<64 hex>`")),
    responses((status = 200, description = "The blob's bytes", content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody)))]
pub async fn get(
    _auth: Auth<Viewer>,
    State(state): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let digest = parse(&digest)?;
    let blobs = state.core.blobs().clone();
    let file = tokio::task::spawn_blocking(move || blobs.open(&digest))
        .await
        .map_err(ApiError::internal)?
        .map_err(blob_error)?;
    let len = file
        .metadata()
        .map(|m| m.len())
        .map_err(ApiError::internal)?;
    Ok(file_response(
        tokio::fs::File::from_std(file),
        len,
        "application/octet-stream",
    ))
}

/// An answer that streams `file` (`len` bytes) as `content_type`.
pub(crate) fn file_response(
    file: tokio::fs::File,
    len: u64,
    content_type: &'static str,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(ReaderStream::new(file)),
    )
        .into_response()
}

/// `PUT /api/v1/blobs/{digest}`
#[utoipa::path(put, path = "/api/v1/blobs/{digest}", tag = "blobs",
    params(("digest" = String, Path, description = "`sha256:<64 hex>` of the body")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored (or was already)", body = api::BlobStored),
        (status = 400, description = "The body does not have this digest", body = ErrorBody)))]
pub async fn put(
    _auth: Auth<Developer>,
    State(state): State<AppState>,
    Path(digest): Path<String>,
    body: Body,
) -> Result<(StatusCode, axum::Json<api::BlobStored>), ApiError> {
    let expected = parse(&digest)?;
    let blobs: BlobStore = state.core.blobs().clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || write_blob(&blobs, rx, expected));
    let mut stream = body.into_data_stream();
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break; // The writer failed; its error is reported below.
                }
            }
            Err(e) => {
                failure = Some(ApiError::bad_request(format!("the upload broke off: {e}")));
                break;
            }
        }
    }
    drop(tx);
    if let Some(f) = failure {
        // Dropping the sender made the writer see the end; its commit is refused
        // below only if the hash differs, so discard whatever it did.
        let _ = writer.await;
        return Err(f);
    }
    let (digest, size) = writer.await.map_err(ApiError::internal)??;
    Ok((
        StatusCode::CREATED,
        axum::Json(api::BlobStored {
            digest: digest.to_string(),
            size,
        }),
    ))
}

/// Writes chunks to a new blob, committing it only if its hash is `expected`.
fn write_blob(
    blobs: &BlobStore,
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    expected: Digest,
) -> Result<(Digest, u64), ApiError> {
    // The writer hashes what it writes, so the bytes are hashed once.
    let mut writer = blobs.writer().map_err(blob_error)?;
    let mut size = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        size += chunk.len() as u64;
        writer.write_all(&chunk).map_err(ApiError::internal)?;
    }
    let got = writer.digest();
    if got != expected {
        // Dropping the writer removes its temporary file.
        return Err(ApiError::bad_request(format!(
            "the uploaded bytes have digest {got}, not {expected}"
        ))
        .hint("upload the file again; it may have changed or been cut off"));
    }
    let digest = writer.commit().map_err(blob_error)?;
    Ok((digest, size))
}
