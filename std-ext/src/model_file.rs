//! Model files opened by memory mapping: tensor data is never copied.

use std::fs::File;
use std::path::{Path, PathBuf};

use bitnet_core::gguf::Gguf;
use memmap2::Mmap;

use crate::Error;

/// A GGUF file mapped into memory.
#[derive(Debug)]
pub struct ModelFile {
    path: PathBuf,
    map: Mmap,
}

impl ModelFile {
    /// Opens and maps `path` read-only. The bytes are not parsed yet.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. Another
        // process truncating the file while it is mapped would raise SIGBUS;
        // like every mmap-based loader (llama.cpp included) we accept that a
        // model file is not modified while it is in use.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        // Ask for huge pages before anything touches the map. Where the
        // file is read into the page cache through this map (not cached
        // yet), Linux then reads it in 2 MiB folios and maps them with one
        // page-table entry each: a decode thread streams the weights ~1.5x
        // faster than through 4 KiB pages, whose boundaries stop the
        // hardware prefetcher (docs/perf.md, "Huge pages"). Advisory only:
        // a kernel without transparent huge pages refuses it, and the map
        // works the same, so the result is deliberately not an error.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(ModelFile { path, map })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Parses and validates the GGUF container.
    pub fn gguf(&self) -> Result<Gguf<'_>, Error> {
        Gguf::parse(&self.map).map_err(|source| Error::Gguf {
            path: self.path.clone(),
            source,
        })
    }
}
