//! Turning INPUT arguments (files and directories) into the list of files to process.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

/// File extensions taken as video when walking a directory.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "wmv", "asf", "flv", "mpg", "mpeg", "ts", "mts",
    "m2ts", "3gp", "ogv", "mxf", "y4m", "vob", "dv",
];
/// File extensions taken as still images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

fn has_extension(path: &Path, list: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| list.iter().any(|l| l.eq_ignore_ascii_case(e)))
}

pub fn is_video(path: &Path) -> bool {
    has_extension(path, VIDEO_EXTENSIONS)
}

pub fn is_image(path: &Path) -> bool {
    has_extension(path, IMAGE_EXTENSIONS)
}

/// One file to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// Where its outputs go, relative to the output directory: the file name for a file
    /// argument, the path below the directory for a file found in a directory argument.
    pub relative: PathBuf,
}

/// Expands the arguments in order: a file stands for itself (whatever its extension: the
/// user named it), a directory for the files below it that `keep` accepts, sorted by path.
pub fn collect(args: &[PathBuf], keep: impl Fn(&Path) -> bool) -> Result<Vec<InputFile>> {
    let mut out = Vec::new();
    for arg in args {
        let meta = std::fs::metadata(arg).with_context(|| format!("{}", arg.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(arg, &mut found).with_context(|| format!("walking {}", arg.display()))?;
            found.sort();
            for path in found.into_iter().filter(|p| keep(p)) {
                let relative = path.strip_prefix(arg).unwrap_or(&path).to_path_buf();
                out.push(InputFile { path, relative });
            }
        } else {
            let relative = PathBuf::from(arg.file_name().unwrap_or(arg.as_os_str()));
            out.push(InputFile {
                path: arg.clone(),
                relative,
            });
        }
    }
    if out.is_empty() {
        bail!("no input files found in {}", display_list(args));
    }
    Ok(out)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        // Follows symlinks to files; symlinked directories are not entered (no cycles).
        if entry.file_type()?.is_dir() {
            walk(&path, found)?;
        } else if path.is_file() {
            found.push(path);
        }
    }
    Ok(())
}

fn display_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serialises a path as text, bytes that are not UTF-8 shown as U+FFFD (serde's own `Path`
/// serialisation fails on them): for the paths in JSON and CSV outputs.
pub fn serialize_lossy<P, S>(path: &P, s: S) -> Result<S::Ok, S::Error>
where
    P: AsRef<Path>,
    S: serde::Serializer,
{
    s.serialize_str(&path.as_ref().to_string_lossy())
}

/// `error` about the input `path`, named once: with the path in front unless the error
/// already names it (every `media` error does).
pub fn about(path: &Path, error: anyhow::Error) -> anyhow::Error {
    let named = error.chain().any(|c| {
        c.downcast_ref::<media::Error>()
            .is_some_and(|m| m.path() == path)
    });
    if named {
        error
    } else {
        error.context(path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_walked_sorted_and_filtered_files_kept_as_named() {
        let root = std::env::temp_dir().join(format!("inputs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("b/deeper")).expect("mkdir");
        for f in ["z.mp4", "a.AVI", "notes.txt", "b/deeper/c.mkv", "b/x.json"] {
            std::fs::write(root.join(f), b"").expect("write");
        }
        let named = root.join("notes.txt");
        let got = collect(&[root.clone(), named.clone()], is_video).expect("collect");
        let rel: Vec<_> = got.iter().map(|f| f.relative.clone()).collect();
        assert_eq!(
            rel,
            [
                PathBuf::from("a.AVI"),
                PathBuf::from("b/deeper/c.mkv"),
                PathBuf::from("z.mp4"),
                PathBuf::from("notes.txt"),
            ]
        );
        assert_eq!(got[3].path, named);
        assert!(collect(&[root.join("missing")], is_video).is_err());
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
