//! CSV manifests: `path,label[,start,end][,split][,group]`, one clip per row.
//!
//! A header row naming the columns (`path`, `label`, `start`, `end`, `split`, `group`, any
//! order) is optional; without one the columns are positional: 2 = path,label;
//! 3 = path,label,split; 4 = path,label,start,end; 5 = path,label,start,end,split; 6 = all.
//! Relative paths resolve against the manifest's folder. Empty `label` means unlabelled; empty
//! `start`/`end` mean the video's start/end; `split` is `train`, `val` or `test` (empty: drawn
//! by the split plan); `group` names the footage the clip was cut from (empty: the video file).

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use super::{Pending, Split};

const COLUMNS: [&str; 6] = ["path", "label", "start", "end", "split", "group"];

pub(crate) fn read(manifest: &Path) -> Result<Vec<Pending>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading manifest {}", manifest.display()))?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let at = |line: u64| format!("{}:{line}", manifest.display());
    let rows = rows(&text).map_err(|(line, e)| e.context(at(line)))?;
    let mut rows = rows.into_iter();
    let Some((first_line, first_fields)) = rows.next() else {
        bail!("manifest {} has no rows", manifest.display());
    };
    // A header names known columns only (in any order); a data row names a file.
    let header = first_fields
        .iter()
        .all(|f| COLUMNS.contains(&f.trim().to_lowercase().as_str()))
        && first_fields
            .iter()
            .any(|f| f.trim().eq_ignore_ascii_case("path"));
    let columns: Vec<String> = if header {
        first_fields
            .iter()
            .map(|f| f.trim().to_lowercase())
            .collect()
    } else {
        positional(first_fields.len())
            .with_context(|| at(first_line))?
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    for c in &columns {
        if !COLUMNS.contains(&c.as_str()) {
            bail!(
                "{}: unknown column '{c}' (expected {})",
                at(1),
                COLUMNS.join(",")
            );
        }
    }
    if !columns.iter().any(|c| c == "path") {
        bail!("{}: no 'path' column", at(first_line));
    }
    let data_rows: Vec<(u64, csv::StringRecord)> = if header {
        rows.collect()
    } else {
        std::iter::once((first_line, first_fields))
            .chain(rows)
            .collect()
    };
    let mut clips = Vec::new();
    for (line, fields) in data_rows {
        if fields.len() != columns.len() {
            bail!(
                "{}: {} fields, expected {} ({})",
                at(line),
                fields.len(),
                columns.len(),
                columns.join(",")
            );
        }
        let get = |name: &str| {
            columns
                .iter()
                .position(|c| c == name)
                .and_then(|i| fields.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let Some(path) = get("path") else {
            bail!("{}: empty path", at(line));
        };
        let path = base.join(path);
        if !path.is_file() {
            bail!("{}: {}: no such file", at(line), path.display());
        }
        let time = |name: &str| -> Result<Option<f64>> {
            get(name)
                .map(|v| match v.parse::<f64>() {
                    Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
                    _ => bail!("{}: {name} '{v}' is not a time in seconds", at(line)),
                })
                .transpose()
        };
        let segment = match (time("start")?, time("end")?) {
            (None, None) => None,
            (start, end) => {
                let (s, e) = (start.unwrap_or(0.0), end.unwrap_or(f64::INFINITY));
                if e <= s {
                    bail!("{}: end ({e}) is not after start ({s})", at(line));
                }
                Some((s, e))
            }
        };
        let split = match get("split").map(str::to_lowercase).as_deref() {
            None => None,
            Some("train") => Some(Split::Train),
            Some("val" | "valid" | "validation") => Some(Split::Val),
            Some("test") => Some(Split::Test),
            Some(other) => bail!("{}: split '{other}' is not train, val or test", at(line)),
        };
        clips.push(Pending {
            path,
            label: get("label").map(str::to_string),
            segment,
            split,
            group: get("group").map(str::to_string),
        });
    }
    Ok(clips)
}

fn positional(n: usize) -> Result<&'static [&'static str]> {
    Ok(match n {
        2 => &["path", "label"],
        3 => &["path", "label", "split"],
        4 => &["path", "label", "start", "end"],
        5 => &["path", "label", "start", "end", "split"],
        6 => &COLUMNS,
        _ => bail!("{n} columns; expected path,label[,start,end][,split][,group]"),
    })
}

/// The rows of a CSV text with the line each starts on, read by the `csv` crate: commas
/// separate, double quotes enclose fields that contain commas or quotes (`""` is a quote inside
/// them). Lines starting with `#` and blank lines are skipped; a row may not run over several
/// lines (a quote left open is an error). Fails with the line of the bad row.
fn rows(text: &str) -> std::result::Result<Vec<(u64, csv::StringRecord)>, (u64, anyhow::Error)> {
    // Ending in a newline, a quote left open on the last line takes that newline in (and is
    // caught below) whether or not the file ends with one.
    let mut text = text.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    // Lines are counted here: the csv crate's line numbers leave out comment lines, and a
    // record's position is where the reader stood, before the blank and comment lines it
    // skipped. Rows span one line each, so a row's line is that of its first byte.
    let bytes = text.as_bytes();
    let (mut counted_to, mut lines_before) = (0, 0);
    let mut line_at = |position: &csv::Position| {
        let mut at = usize::try_from(position.byte()).map_or(bytes.len(), |b| b.min(bytes.len()));
        loop {
            match bytes.get(at) {
                Some(b'\n' | b'\r') => at += 1,
                Some(b'#') => {
                    at = bytes[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |i| at + i + 1);
                }
                _ => break,
            }
        }
        if at < counted_to {
            (counted_to, lines_before) = (0, 0);
        }
        lines_before += bytes[counted_to..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        counted_to = at;
        lines_before + 1
    };
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let start = reader.position().clone();
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(rows),
            Ok(true) => {}
            Err(e) => return Err((line_at(e.position().unwrap_or(&start)), e.into())),
        }
        let line = line_at(&start);
        if record.iter().any(|f| f.contains(['\n', '\r'])) {
            return Err((line, anyhow::anyhow!("unterminated quote")));
        }
        // A line of spaces only is blank.
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        rows.push((line, record.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        rows(text)
            .map_err(|(line, e)| format!("{line}: {e:#}"))
            .expect("rows")
            .iter()
            .map(|(_, r)| r.iter().map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn csv_fields_handle_quotes_comments_and_blank_lines() {
        assert_eq!(
            fields("# a comment\n\n  \na,\"b, c\",\"say \"\"hi\"\"\",,\r\n"),
            [["a", "b, c", "say \"hi\"", "", ""]]
        );
        let lines: Vec<u64> = rows("#c\na,b\n\n\"c\",d\n")
            .expect("rows")
            .iter()
            .map(|(line, _)| *line)
            .collect();
        assert_eq!(lines, [2, 4]);
        let (line, e) = rows("a,b\na,\"b\nc,d\n").expect_err("open quote");
        assert_eq!((line, e.to_string().as_str()), (2, "unterminated quote"));
        assert_eq!(rows(r#"a,"b"#).expect_err("open quote").0, 1);
    }

    #[test]
    fn manifest_rows_resolve_paths_segments_and_splits() {
        let dir = std::env::temp_dir().join(format!("manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("v")).expect("mkdir");
        std::fs::write(dir.join("v/a.mp4"), b"x").expect("write");
        let m = dir.join("m.csv");
        std::fs::write(
            &m,
            "path,label,start,end,split,group\nv/a.mp4,walk,1.5,3,train,day1\nv/a.mp4,run,,,VAL,\nv/a.mp4,run,4,5,test,day2\n",
        )
        .expect("write");
        let rows = read(&m).expect("read");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].path, dir.join("v/a.mp4"));
        assert_eq!(rows[0].group.as_deref(), Some("day1"));
        assert_eq!(rows[1].group, None);
        assert_eq!(
            (rows[2].split, rows[2].group.as_deref()),
            (Some(Split::Test), Some("day2"))
        );
        // Six positional columns end with the group.
        std::fs::write(&m, "v/a.mp4,walk,,,test,g\n").expect("write");
        assert_eq!(read(&m).expect("read")[0].group.as_deref(), Some("g"));
        assert_eq!(rows[0].segment, Some((1.5, 3.0)));
        assert_eq!(rows[0].split, Some(Split::Train));
        assert_eq!(rows[1].segment, None);
        assert_eq!(rows[1].split, Some(Split::Val));
        // Header columns in any order.
        std::fs::write(&m, "label,path\nwalk,v/a.mp4\n").expect("write");
        assert_eq!(read(&m).expect("read")[0].label.as_deref(), Some("walk"));
        // Positional, no header.
        std::fs::write(&m, "v/a.mp4,walk\nv/a.mp4,run\n").expect("write");
        assert_eq!(read(&m).expect("read")[1].label.as_deref(), Some("run"));
        // A quoted path with a comma (and a quote) in it; comments and blank lines between.
        std::fs::write(dir.join("v/a, \"b\".mp4"), b"x").expect("write");
        std::fs::write(
            &m,
            "# clips\npath,label\n\n\"v/a, \"\"b\"\".mp4\",\"walk, slowly\"\n",
        )
        .expect("write");
        let rows = read(&m).expect("read");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].path, dir.join("v/a, \"b\".mp4"));
        assert_eq!(rows[0].label.as_deref(), Some("walk, slowly"));
        // Problems name the line.
        for (body, needle) in [
            ("v/missing.mp4,walk\n", "m.csv:1: "),
            ("v/a.mp4,walk,3,1\n", "not after start"),
            ("v/a.mp4,walk,x,2\n", "not a time"),
            ("path,label\nv/a.mp4,walk,extra\n", "m.csv:2: 3 fields"),
            (
                "v/a.mp4,walk,holdout\n",
                "split 'holdout' is not train, val or test",
            ),
            ("path,label,source\nv/a.mp4,walk,x\n", "m.csv:1: "),
            (
                "# c\nv/a.mp4,walk\nv/a.mp4,\"run\n",
                "m.csv:3: unterminated quote",
            ),
            ("\n\nv/a.mp4,walk\nv/a.mp4\n", "m.csv:4: 1 fields"),
        ] {
            std::fs::write(&m, body).expect("write");
            let err = format!("{:#}", read(&m).expect_err(body));
            assert!(err.contains(needle), "{body:?}: {err}");
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
