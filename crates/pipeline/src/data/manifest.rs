//! CSV manifests: `path,label[,start,end][,split]`, one clip per row.
//!
//! A header row naming the columns (`path`, `label`, `start`, `end`, `split`, any order) is
//! optional; without one the columns are positional: 2 = path,label; 3 = path,label,split;
//! 4 = path,label,start,end; 5 = all. Relative paths resolve against the manifest's folder.
//! Empty `label` means unlabelled; empty `start`/`end` mean the video's start/end.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use super::{Pending, Split};

pub(crate) fn read(manifest: &Path) -> Result<Vec<Pending>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading manifest {}", manifest.display()))?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let at = |line: usize| format!("{}:{line}", manifest.display());
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((first_line, first)) = rows.next() else {
        bail!("manifest {} has no rows", manifest.display());
    };
    let first_fields = split_csv(first).with_context(|| at(first_line))?;
    // A header names known columns only (in any order); a data row names a file.
    let header = first_fields.iter().all(|f| {
        ["path", "label", "start", "end", "split"].contains(&f.trim().to_lowercase().as_str())
    }) && first_fields
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
        if !["path", "label", "start", "end", "split"].contains(&c.as_str()) {
            bail!(
                "{}: unknown column '{c}' (expected path,label,start,end,split)",
                at(1)
            );
        }
    }
    if !columns.iter().any(|c| c == "path") {
        bail!("{}: no 'path' column", at(first_line));
    }
    let data_rows: Vec<(usize, &str)> = if header {
        rows.collect()
    } else {
        std::iter::once((first_line, first)).chain(rows).collect()
    };
    let mut clips = Vec::new();
    for (line, row) in data_rows {
        let fields = split_csv(row).with_context(|| at(line))?;
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
                .map(|i| fields[i].trim())
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
            Some(other) => bail!("{}: split '{other}' is not train or val", at(line)),
        };
        clips.push(Pending {
            path,
            label: get("label").map(str::to_string),
            segment,
            split,
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
        _ => bail!("{n} columns; expected path,label[,start,end][,split]"),
    })
}

/// One CSV row into fields: commas separate, double quotes enclose fields that contain commas
/// or quotes (`""` is a quote inside them).
fn split_csv(row: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = row.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        bail!("unterminated quote");
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_handle_quotes() {
        assert_eq!(
            split_csv(r#"a,"b, c","say ""hi""",,"#).expect("ok"),
            ["a", "b, c", "say \"hi\"", "", ""]
        );
        assert!(split_csv(r#"a,"b"#).is_err());
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
            "path,label,start,end,split\nv/a.mp4,walk,1.5,3,train\nv/a.mp4,run,,,VAL\n",
        )
        .expect("write");
        let rows = read(&m).expect("read");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].path, dir.join("v/a.mp4"));
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
        // Problems name the line.
        for (body, needle) in [
            ("v/missing.mp4,walk\n", "m.csv:1: "),
            ("v/a.mp4,walk,3,1\n", "not after start"),
            ("v/a.mp4,walk,x,2\n", "not a time"),
            ("path,label\nv/a.mp4,walk,extra\n", "m.csv:2: 3 fields"),
            ("v/a.mp4,walk,test\n", "split 'test'"),
        ] {
            std::fs::write(&m, body).expect("write");
            let err = format!("{:#}", read(&m).expect_err(body));
            assert!(err.contains(needle), "{body:?}: {err}");
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
