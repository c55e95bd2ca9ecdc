//! Content hashes for cache keys, shard assignment and provenance: XXH3-64 (the xxHash
//! specification), so a value never changes when our code or the Rust toolchain does, and any
//! other tool can recompute it. Not cryptographic: a key, not a signature.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// XXH3-64 of a file's bytes, read in 1 MiB pieces.
pub fn file_hash(path: &Path) -> Result<u64> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.digest())
}

/// XXH3-64 of `bytes` (seed 0).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_specified_xxh3_64() {
        // From the xxHash reference implementation (`xxhsum -H3`): XXH3_64bits("") and
        // XXH3_64bits("a").
        assert_eq!(hash_bytes(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(hash_bytes(b"a"), 0xE6C6_32B6_1E96_4E1F);
    }

    #[test]
    fn a_file_hashes_as_its_bytes_do() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("data.bin");
        // Over one read buffer, so the streaming path joins pieces.
        let data: Vec<u8> = (0..(3 << 19) as u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data)?;
        assert_eq!(file_hash(&path)?, hash_bytes(&data));
        Ok(())
    }
}
