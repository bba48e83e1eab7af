//! Calls that move files: a run's source archive and blobs (artifacts, caches).
//!
//! Downloads go to a temporary file beside the destination and are renamed into place
//! when complete, so an interrupted download never leaves a file that looks whole.

use crate::{Client, ClientError};
use ferry_types::api::BlobStored;
use futures_util::StreamExt;
use reqwest::Method;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

impl Client {
    /// `GET /api/v1/runs/{id}/source.tar`: the run's commit as a tar archive, written
    /// to `dest`; returns its size in bytes.
    pub async fn download_source(&self, run: i64, dest: &Path) -> Result<u64, ClientError> {
        self.download(&format!("/api/v1/runs/{run}/source.tar"), dest, None)
            .await
    }

    /// `GET /api/v1/blobs/{digest}`: a blob written to `dest`, checked against its
    /// digest (`sha256:<hex>` or the bare hex); returns its size in bytes.
    pub async fn get_blob(&self, digest: &str, dest: &Path) -> Result<u64, ClientError> {
        let hex = bare_hex(digest);
        self.download(&format!("/api/v1/blobs/sha256:{hex}"), dest, Some(hex))
            .await
    }

    /// `PUT /api/v1/blobs/{digest}`: uploads the file at `path` under its SHA-256,
    /// which the server checks.
    pub async fn put_blob(&self, path: &Path) -> Result<BlobStored, ClientError> {
        let digest = hash_file(path).await?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_error(path, e))?;
        self.upload(&digest, reqwest::Body::from(file)).await
    }

    /// `PUT /api/v1/blobs/{digest}`: uploads `bytes` under their SHA-256.
    pub async fn put_blob_bytes(&self, bytes: Vec<u8>) -> Result<BlobStored, ClientError> {
        let digest = hex::encode(Sha256::digest(&bytes));
        self.upload(&digest, reqwest::Body::from(bytes)).await
    }

    async fn upload(&self, hex: &str, body: reqwest::Body) -> Result<BlobStored, ClientError> {
        let path = format!("/api/v1/blobs/sha256:{hex}");
        self.json(
            self.request(Method::PUT, &path)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body),
            &path,
        )
        .await
    }

    async fn download(
        &self,
        path: &str,
        dest: &Path,
        expect_hex: Option<&str>,
    ) -> Result<u64, ClientError> {
        let url = self.url(path);
        let response = self.send(self.request(Method::GET, path), path).await?;
        let tmp = temp_beside(dest);
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_error(&tmp, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        let outcome: Result<(), ClientError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|source| ClientError::Connect {
                    url: url.clone(),
                    source,
                })?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io_error(&tmp, e))?;
            }
            file.flush().await.map_err(|e| io_error(&tmp, e))?;
            file.sync_all().await.map_err(|e| io_error(&tmp, e))?;
            if let Some(expected) = expect_hex {
                let got = hex::encode(hasher.finalize());
                if got != expected {
                    return Err(ClientError::Decode {
                        url: url.clone(),
                        message: format!(
                            "blob content has digest sha256:{got}, not sha256:{expected}"
                        ),
                    });
                }
            }
            Ok(())
        }
        .await;
        drop(file);
        if let Err(e) = outcome {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| io_error(dest, e))?;
        Ok(size)
    }
}

/// The hex digits of a digest given as `sha256:<hex>` or bare hex.
fn bare_hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

async fn hash_file(path: &Path) -> Result<String, ClientError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_error(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn temp_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".to_owned());
    dest.with_file_name(format!(".{name}.{}.part", std::process::id()))
}

fn io_error(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::Io {
        path: path.display().to_string(),
        source,
    }
}
