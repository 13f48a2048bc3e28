//! Where the model's bytes live: memory-mapped natively, owned in wasm (or when given bytes).

use std::ops::Deref;

use crate::error::{Error, Result};

pub enum Storage {
    Owned(Vec<u8>),
    #[cfg(not(target_family = "wasm"))]
    Mapped(memmap2::Mmap),
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Owned(v) => v,
            #[cfg(not(target_family = "wasm"))]
            Storage::Mapped(m) => m,
        }
    }
}

impl Storage {
    /// Open a model file: mapped where the platform can, read whole otherwise.
    pub fn open(path: &str) -> Result<Storage> {
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::FileNotFound(path.to_string()),
            _ => Error::Io(format!("{path}: {e}")),
        })?;
        let meta = file.metadata().map_err(|e| Error::Io(format!("{path}: {e}")))?;
        if meta.is_dir() {
            return Err(Error::Io(format!("{path} is a directory")));
        }
        #[cfg(not(target_family = "wasm"))]
        {
            if meta.len() == 0 {
                return Ok(Storage::Owned(Vec::new()));
            }
            // SAFETY: the mapping is read-only; edgeslm treats model files as immutable assets.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io(format!("{path}: {e}")))?;
            Ok(Storage::Mapped(map))
        }
        #[cfg(target_family = "wasm")]
        {
            use std::io::Read;
            let mut buf = Vec::new();
            buf.try_reserve_exact(meta.len() as usize)
                .map_err(|_| Error::Io(format!("{path}: cannot allocate {} bytes", meta.len())))?;
            let mut file = file;
            file.read_to_end(&mut buf).map_err(|e| Error::Io(format!("{path}: {e}")))?;
            Ok(Storage::Owned(buf))
        }
    }
}
