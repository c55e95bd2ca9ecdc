//! `run`'s records as JSON Lines or CSV, to stdout or to a file that appears only when
//! complete.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::analysis::{HeadRecord, Record};

/// Record formats of `run` and `batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per sampled frame.
    Jsonl,
    /// One row per sampled frame, a header first.
    Csv,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    /// CSV for a path ending in `.csv`, else JSON Lines.
    pub fn for_path(path: Option<&Path>) -> Self {
        match path.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Jsonl,
        }
    }
}

/// One record as a line of `format` (without the newline).
pub fn format_record(record: &Record, format: Format) -> Result<String> {
    Ok(match format {
        Format::Jsonl => serde_json::to_string(record)?,
        Format::Csv => {
            let list = |items: Vec<String>| items.join(";");
            let top = list(
                record
                    .top
                    .iter()
                    .map(|s| format!("{}:{:.4}", s.label, s.probability))
                    .collect(),
            );
            let head = match &record.head {
                HeadRecord::Classify { top } | HeadRecord::Anticipate { top, .. } => list(
                    top.iter()
                        .map(|n| format!("{}:{:.4}", n.label, n.probability))
                        .collect(),
                ),
                HeadRecord::Forecast { expected, .. } => list(
                    expected
                        .iter()
                        .map(|s| format!("{}:{:.4}", s.label, s.probability))
                        .collect(),
                ),
            };
            [
                format!("{:.6}", record.timestamp),
                record.frame.to_string(),
                csv_field(record.top.first().map_or("", |s| s.label)),
                record
                    .top
                    .first()
                    .map_or(String::new(), |s| format!("{:.4}", s.probability)),
                csv_field(&top),
                csv_field(&head),
                record.surprise.map_or(String::new(), |s| format!("{s:.6}")),
                csv_field(&list(record.events.clone())),
            ]
            .join(",")
        }
    })
}

/// The CSV header line (without the newline).
pub const CSV_HEADER: &str = "timestamp,frame,top1,top1_probability,top,head,surprise,events";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Where records go: a file that appears only when complete, or stdout.
pub struct RecordWriter {
    out: Box<dyn std::io::Write + Send>,
    /// `(temporary, final)` when writing a file.
    rename: Option<(PathBuf, PathBuf)>,
    format: Format,
}

impl RecordWriter {
    pub fn create(path: Option<&Path>, format: Format) -> Result<Self> {
        let (out, rename): (Box<dyn std::io::Write + Send>, _) = match path {
            Some(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                let tmp = crate::output::temp_path(path, "records");
                let file = std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?;
                (
                    Box::new(std::io::BufWriter::new(file)),
                    Some((tmp, path.to_path_buf())),
                )
            }
            None => (Box::new(std::io::BufWriter::new(std::io::stdout())), None),
        };
        let mut w = Self {
            out,
            rename,
            format,
        };
        if format == Format::Csv {
            writeln!(w.out, "{CSV_HEADER}")?;
        }
        Ok(w)
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        let line = format_record(record, self.format)?;
        writeln!(self.out, "{line}")?;
        if self.rename.is_none() {
            // stdout: let a reader (`| head`, `| jq`) see frames as they come.
            self.out.flush()?;
        }
        Ok(())
    }

    /// Flushes and, for a file, renames it into place.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        if let Some((tmp, path)) = self.rename.take() {
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.rename.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl std::fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordWriter")
            .field("file", &self.rename.as_ref().map(|(_, p)| p))
            .field("format", &self.format)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_fields_that_need_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
