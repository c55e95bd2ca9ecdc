//! `run`'s records as JSON Lines or CSV, to stdout or to a file that appears only when
//! complete; or, for a live source, to a file written as it goes.

use std::fs::File;
use std::io::{BufWriter, Stdout, Write};
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::analysis::{HeadRecord, MotionRecord, Record};
use crate::output::AtomicFile;

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

/// The CSV columns, in order. The motion columns are empty when motion is off; with source
/// `none` they are unknown, not zero motion. `wall` and `latency` are filled for live and
/// streamed sources only.
pub const CSV_COLUMNS: [&str; 17] = [
    "timestamp",
    "frame",
    "top1",
    "top1_probability",
    "top",
    "head",
    "surprise",
    "events",
    "pan_x",
    "pan_y",
    "zoom",
    "roll",
    "objects",
    "coverage",
    "motion_source",
    "wall",
    "latency",
];

/// One record as the fields of a CSV row ([`CSV_COLUMNS`]); lists are `label:probability`
/// items (or events) joined by `;`.
fn csv_fields(record: &Record) -> [String; 17] {
    let list = |items: Vec<String>| items.join(";");
    let scored = |label: &str, probability: f32| format!("{label}:{probability:.4}");
    let top = list(
        record
            .top
            .iter()
            .map(|s| scored(s.label, s.probability))
            .collect(),
    );
    let motion = |value: fn(&MotionRecord) -> f32| {
        record
            .motion
            .as_ref()
            .map_or(String::new(), |m| format!("{:.6}", value(m)))
    };
    let head = match &record.head {
        HeadRecord::Classify { top } | HeadRecord::Anticipate { top, .. } => list(
            top.iter()
                .map(|n| scored(&n.label, n.probability))
                .collect(),
        ),
        HeadRecord::Forecast { expected, .. } => list(
            expected
                .iter()
                .map(|s| scored(s.label, s.probability))
                .collect(),
        ),
    };
    [
        format!("{:.6}", record.timestamp),
        record.frame.to_string(),
        record.top.first().map_or("", |s| s.label).to_string(),
        record
            .top
            .first()
            .map_or(String::new(), |s| format!("{:.4}", s.probability)),
        top,
        head,
        record.surprise.map_or(String::new(), |s| format!("{s:.6}")),
        list(record.events.clone()),
        motion(|m| m.pan[0]),
        motion(|m| m.pan[1]),
        motion(|m| m.zoom),
        motion(|m| m.roll),
        motion(|m| m.objects),
        motion(|m| m.coverage),
        record
            .motion
            .as_ref()
            .map_or(String::new(), |m| m.source.to_string()),
        record
            .timing
            .map_or(String::new(), |t| format!("{:.6}", t.wall)),
        record
            .timing
            .map_or(String::new(), |t| format!("{:.6}", t.latency)),
    ]
}

/// Where the records' bytes go.
#[derive(Debug)]
enum Sink {
    File(AtomicFile),
    /// A live source's records: written under the final name as they come.
    Live(BufWriter<File>),
    Stdout(BufWriter<Stdout>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Live(f) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Live(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
        }
    }
}

#[derive(Debug)]
enum Out {
    Jsonl(Sink),
    /// Boxed: the csv writer is large beside a sink.
    Csv(Box<csv::Writer<Sink>>),
}

/// Where records go: a file that appears only when complete, or stdout.
#[derive(Debug)]
pub struct RecordWriter {
    out: Out,
    /// Each record is flushed as it is written.
    as_they_come: bool,
}

impl RecordWriter {
    /// Records to `path` (a file that appears only when complete), or stdout.
    pub fn create(path: Option<&Path>, format: Format) -> Result<Self> {
        Self::with_sink(
            match path {
                Some(path) => Sink::File(AtomicFile::create(path)?),
                None => Sink::Stdout(BufWriter::new(std::io::stdout())),
            },
            format,
        )
    }

    /// Records of a live source to `path` (or stdout): the file is written under its own
    /// name, each record flushed as it comes, so that a run that is killed leaves every record
    /// so far (the one exception to write-then-rename; the temporary-file sweep never takes
    /// it: its name is the product's). Create it when the first record is there: a source
    /// that gives none must not replace an earlier file with an empty one.
    pub fn create_live(path: Option<&Path>, format: Format) -> Result<Self> {
        let Some(path) = path else {
            return Self::create(None, format);
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Self::with_sink(Sink::Live(BufWriter::new(file)), format)
    }

    fn with_sink(sink: Sink, format: Format) -> Result<Self> {
        let as_they_come = !matches!(sink, Sink::File(_));
        let out = match format {
            Format::Jsonl => Out::Jsonl(sink),
            Format::Csv => {
                let mut csv = csv::Writer::from_writer(sink);
                csv.write_record(CSV_COLUMNS)?;
                Out::Csv(Box::new(csv))
            }
        };
        Ok(Self { out, as_they_come })
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        match &mut self.out {
            Out::Jsonl(sink) => {
                serde_json::to_writer(&mut *sink, record)?;
                sink.write_all(b"\n")?;
            }
            Out::Csv(csv) => csv.write_record(csv_fields(record))?,
        }
        if self.as_they_come {
            // Let a reader (`| head`, `| jq`, `tail -f`) see frames as they come.
            match &mut self.out {
                Out::Jsonl(sink) => sink.flush()?,
                Out::Csv(csv) => csv.flush()?,
            }
        }
        Ok(())
    }

    /// Flushes and, for a file, puts it in place (fsynced).
    pub fn finish(self) -> Result<()> {
        let sink = match self.out {
            Out::Jsonl(sink) => sink,
            Out::Csv(csv) => csv.into_inner().map_err(|e| e.into_error())?,
        };
        match sink {
            Sink::File(file) => file.commit(),
            Sink::Live(mut out) => {
                out.flush()?;
                Ok(out.get_ref().sync_all()?)
            }
            Sink::Stdout(mut out) => Ok(out.flush()?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Named;
    use crate::imagenet::Scored;

    fn record(label: &'static str, head: &str, events: &[&str]) -> Record {
        Record {
            timestamp: 1.25,
            frame: 3,
            top: vec![
                Scored {
                    index: 1,
                    label,
                    probability: 0.5,
                },
                Scored {
                    index: 2,
                    label: "plain",
                    probability: 0.25,
                },
            ],
            head: HeadRecord::Classify {
                top: vec![Named {
                    label: head.into(),
                    probability: 0.75,
                }],
            },
            surprise: Some(0.125),
            motion: None,
            timing: None,
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn write_csv(path: &Path, records: &[Record]) {
        let mut w = RecordWriter::create(Some(path), Format::Csv).expect("create");
        for r in records {
            w.write(r).expect("write");
        }
        w.finish().expect("finish");
    }

    #[test]
    fn csv_record_with_commas_quotes_and_newlines_round_trips() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("out/records.csv");
        let r = record(
            "tabby, \"cat\"\nstriped",
            "walk, \"fast\"\r\nnow",
            &["view: a, \"b\" -> c\nd", "surprise"],
        );
        write_csv(&path, std::slice::from_ref(&r));
        let mut reader = csv::Reader::from_path(&path).expect("open");
        assert_eq!(reader.headers().expect("header"), &CSV_COLUMNS[..]);
        let rows: Vec<csv::StringRecord> = reader
            .records()
            .collect::<std::result::Result<_, _>>()
            .expect("rows");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0], csv_fields(&r)[..]);
        // The fields' text: `label:probability` lists and events joined by `;`.
        assert_eq!(&rows[0][2], "tabby, \"cat\"\nstriped");
        assert_eq!(&rows[0][4], "tabby, \"cat\"\nstriped:0.5000;plain:0.2500");
        assert_eq!(&rows[0][5], "walk, \"fast\"\r\nnow:0.7500");
        assert_eq!(&rows[0][7], "view: a, \"b\" -> c\nd;surprise");
        assert_eq!(
            std::fs::read_dir(path.parent().expect("parent"))
                .expect("ls")
                .count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn csv_quotes_only_fields_that_need_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("records.csv");
        write_csv(
            &path,
            &[
                record("plain", "walk", &[]),
                record("a,b", "say \"x\"", &["e1", "e2"]),
            ],
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "timestamp,frame,top1,top1_probability,top,head,surprise,events,\
             pan_x,pan_y,zoom,roll,objects,coverage,motion_source,wall,latency\n\
             1.250000,3,plain,0.5000,plain:0.5000;plain:0.2500,walk:0.7500,0.125000,,,,,,,,,,\n\
             1.250000,3,\"a,b\",0.5000,\"a,b:0.5000;plain:0.2500\",\"say \"\"x\"\":0.7500\",0.125000,e1;e2,,,,,,,,,\n"
        );
    }

    #[test]
    fn abandoned_file_leaves_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("records.jsonl");
        let mut w = RecordWriter::create(Some(&path), Format::Jsonl).expect("create");
        w.write(&record("a", "b", &[])).expect("write");
        drop(w);
        assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 0);
    }
}
