//! Where a job's artifacts come from and go to: the run's own [`Artifacts`] for
//! `ferry run`, or a [`JobIo`] for a job run alone by [`super::execute`].

use super::archive;
use super::artifacts::Artifacts;
use super::io::{JobIo, JobIoError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The artifact hand-off of a run context.
pub(crate) enum Handoff {
    /// A whole run in this process.
    Run(Artifacts),
    /// One job; its needs' digests are known up front.
    Io(IoHandoff),
}

/// Artifacts through a [`JobIo`].
pub(crate) struct IoHandoff {
    pub io: Arc<dyn JobIo>,
    /// Instance id → digest of the needed jobs' artifacts.
    pub needs: BTreeMap<String, String>,
    /// Where downloaded and packed archives go.
    pub scratch: PathBuf,
    /// The digest this job stored, once it did.
    pub saved: Mutex<Option<String>>,
}

fn io_text(e: JobIoError) -> String {
    e.to_string()
}

impl Handoff {
    /// Unpacks the artifacts of `needs` (instance ids) into `workspace`; one note per
    /// artifact restored.
    pub(crate) async fn restore(
        self: &Arc<Self>,
        needs: &[String],
        workspace: &Path,
    ) -> Result<Vec<String>, String> {
        match &**self {
            Handoff::Run(_) => {
                let this = self.clone();
                let (needs, ws) = (needs.to_vec(), workspace.to_path_buf());
                tokio::task::spawn_blocking(move || match &*this {
                    Handoff::Run(a) => a.restore(&needs, &ws),
                    Handoff::Io(_) => Ok(Vec::new()),
                })
                .await
                .map_err(|e| format!("restoring artifacts failed: {e}"))?
            }
            Handoff::Io(h) => {
                let mut notes = Vec::new();
                for need in needs {
                    let Some(digest) = h.needs.get(need) else {
                        continue;
                    };
                    let file = h.scratch.join(format!(
                        "need-{}.tar",
                        super::util::short_hash(need.as_bytes())
                    ));
                    h.io.fetch_artifact(digest, &file).await.map_err(io_text)?;
                    let (ws, f) = (workspace.to_path_buf(), file.clone());
                    let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                        let r = std::fs::File::open(&f)?;
                        archive::unpack(std::io::BufReader::new(r), &ws)
                    })
                    .await
                    .map_err(|e| format!("unpacking the artifacts of `{need}` failed: {e}"))?;
                    let _ = std::fs::remove_file(&file);
                    res.map_err(|e| format!("unpacking the artifacts of `{need}`: {e}"))?;
                    notes.push(format!("Restored the artifacts of `{need}` ({digest})."));
                }
                Ok(notes)
            }
        }
    }

    /// Packs `patterns` of `workspace` as the artifacts of `job`; returns a note.
    pub(crate) async fn save(
        self: &Arc<Self>,
        job: &str,
        workspace: &Path,
        patterns: &[String],
    ) -> Result<String, String> {
        match &**self {
            Handoff::Run(_) => {
                let this = self.clone();
                let (job, ws, patterns) =
                    (job.to_string(), workspace.to_path_buf(), patterns.to_vec());
                tokio::task::spawn_blocking(move || match &*this {
                    Handoff::Run(a) => a.save(&job, &ws, &patterns),
                    Handoff::Io(_) => Err("internal error: wrong artifact hand-off".to_string()),
                })
                .await
                .map_err(|e| format!("saving artifacts failed: {e}"))?
            }
            Handoff::Io(h) => {
                let file = h.scratch.join("artifacts.tar");
                let (ws, f, pats) = (workspace.to_path_buf(), file.clone(), patterns.to_vec());
                let count = tokio::task::spawn_blocking(move || -> Result<usize, String> {
                    let files = archive::select(&ws, &pats).map_err(|e| e.to_string())?;
                    if files.is_empty() {
                        return Err(format!(
                            "no file matches the artifact paths {}",
                            pats.iter()
                                .map(|p| format!("`{p}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    let out =
                        std::fs::File::create(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                    let w = archive::pack(&ws, &files, std::io::BufWriter::new(out))
                        .map_err(|e| e.to_string())?;
                    let file = w.into_inner().map_err(|e| e.to_string())?;
                    file.sync_all().map_err(|e| e.to_string())?;
                    Ok(files.len())
                })
                .await
                .map_err(|e| format!("packing artifacts failed: {e}"))??;
                let digest = h.io.store_artifact(&file).await.map_err(io_text)?;
                let _ = std::fs::remove_file(&file);
                if let Ok(mut saved) = h.saved.lock() {
                    *saved = Some(digest.clone());
                }
                Ok(format!("Saved {count} artifact file(s) as {digest}."))
            }
        }
    }

    /// Releases and deploys the job's output (a job with `deploy: ENV`), through the
    /// [`JobIo`]; None for `ferry run`, which has no server to deploy with.
    pub(crate) async fn deploy(
        &self,
        environment: &str,
    ) -> Option<Result<super::io::JobDeployOutcome, String>> {
        match self {
            Handoff::Run(_) => None,
            Handoff::Io(h) => {
                let request = super::io::JobDeploy {
                    environment: environment.to_string(),
                    artifact: self.saved(),
                };
                Some(h.io.deploy(&request).await.map_err(io_text))
            }
        }
    }

    /// The digest stored by [`Handoff::save`] through a [`JobIo`].
    pub(crate) fn saved(&self) -> Option<String> {
        match self {
            Handoff::Run(_) => None,
            Handoff::Io(h) => h.saved.lock().ok().and_then(|s| s.clone()),
        }
    }
}
