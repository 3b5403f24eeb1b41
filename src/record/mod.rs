//! The results directory of a run: `results/<run-id>/` (or `--out DIR`), with `results/latest`
//! pointing at the newest. Files are written as the run goes, so a crash keeps what came before.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::provision::Outcome;

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(out: Option<&Path>, run: &str) -> Result<RunDir> {
        let path = match out {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from("results").join(run),
        };
        std::fs::create_dir_all(&path).with_context(|| format!("creating results directory {}", path.display()))?;
        if out.is_none() {
            let latest = PathBuf::from("results/latest");
            let _ = std::fs::remove_file(&latest);
            // A relative link survives moving the results folder.
            if let Err(e) = std::os::unix::fs::symlink(run, &latest) {
                tracing::warn!("cannot update results/latest: {e}");
            }
        }
        Ok(RunDir { path })
    }

    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let file = self.path.join(name);
        std::fs::write(&file, serde_json::to_vec_pretty(value)?).with_context(|| format!("writing {}", file.display()))
    }

    /// `targets.csv`: one row per target with how provisioning ended.
    pub fn write_targets(&self, outcomes: &[Outcome]) -> Result<()> {
        let file = self.path.join("targets.csv");
        let mut w = csv::Writer::from_path(&file).with_context(|| format!("writing {}", file.display()))?;
        w.write_record(["target", "provider", "status", "agentsh_version", "failed_step", "seconds", "detail"])?;
        for o in outcomes {
            match o {
                Ok(r) => w.write_record([
                    r.target.name.as_str(),
                    r.target.provider.as_str(),
                    "ready",
                    r.agentsh_version.as_deref().unwrap_or("none"),
                    "",
                    &format!("{:.2}", r.seconds),
                    "",
                ])?,
                Err(f) => w.write_record([
                    f.name.as_str(),
                    f.provider.as_str(),
                    "failed",
                    "",
                    f.step.as_str(),
                    &format!("{:.2}", f.seconds),
                    f.error.as_str(),
                ])?,
            }
        }
        // csv's Drop swallows errors: flush by hand so a full disk is reported.
        w.flush().with_context(|| format!("flushing {}", file.display()))?;
        Ok(())
    }
}
