use std::fmt;
use std::io;
use std::path::PathBuf;

use dynprobe_format::DefinitionError;

/// Why a provider could not be loaded or unloaded.
#[derive(Debug)]
pub enum Error {
    /// The definition breaks a rule; nothing was written.
    Definition(DefinitionError),
    /// Someone other than root and this user could change the directory
    /// `path` (the cache directory, a `<build-id>` directory in it, or a
    /// directory or link on the way to it), and so plant code: `reason` says
    /// how.
    UnsafeDirectory { path: PathBuf, reason: String },
    /// A file system operation failed.
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The dynamic linker refused the generated object.
    Dlopen { path: PathBuf, message: String },
    /// This platform cannot load providers (the format crate can still build
    /// images for it).
    Unsupported(&'static str),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Definition(e) => write!(f, "invalid provider definition: {e}"),
            Error::UnsafeDirectory { path, reason } => {
                write!(
                    f,
                    "refusing to use {} for generated libraries: {reason}",
                    path.display()
                )
            }
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::Dlopen { path, message } => {
                write!(f, "cannot load {}: {message}", path.display())
            }
            Error::Unsupported(what) => write!(f, "dynprobe does not support {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Definition(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<DefinitionError> for Error {
    fn from(e: DefinitionError) -> Error {
        Error::Definition(e)
    }
}
