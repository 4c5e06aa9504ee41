//! Network namespaces: netlink handles bound to a pod's namespace, and running a short
//! synchronous action inside it.
//!
//! A netlink socket belongs to the namespace it was created in. So a handle for a pod's namespace
//! is made on a short-lived thread that has joined that namespace; the thread ends at once and
//! the socket (driven by the tokio runtime) stays in the pod's namespace. The runtime's threads
//! never change namespace; only short-lived threads of our own do.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// A failure to enter or use a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file does not exist (the pod is gone).
    #[error("network namespace {path} does not exist")]
    Gone {
        /// The namespace path.
        path: PathBuf,
    },
    /// The namespace file cannot be opened or joined.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// The namespace path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The helper thread died.
    #[error("namespace helper thread for {path} failed")]
    Thread {
        /// The namespace path.
        path: PathBuf,
    },
}

/// An open network namespace.
#[derive(Debug)]
pub struct Netns {
    path: PathBuf,
    file: File,
}

impl Netns {
    /// Opens the namespace at `path` (a bind mount such as `/var/run/netns/x`, or
    /// `/proc/<pid>/ns/net`).
    pub fn open(path: &Path) -> Result<Self, NetnsError> {
        let file = File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                NetnsError::Gone {
                    path: path.to_owned(),
                }
            } else {
                NetnsError::Enter {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// The namespace path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open namespace file (for `IFLA_NET_NS_FD`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Another handle on the same namespace (a duplicated descriptor), e.g. for a thread.
    pub fn try_clone(&self) -> Result<Self, NetnsError> {
        let file = self.file.try_clone().map_err(|source| NetnsError::Enter {
            path: self.path.clone(),
            source,
        })?;
        Ok(Self {
            path: self.path.clone(),
            file,
        })
    }

    /// Moves the calling thread into this namespace. Only for a thread of our own that ends
    /// when its work is done (see [`crate::interface`]): a thread's namespace is never
    /// restored, and a runtime's worker threads must stay where they are.
    pub(crate) fn enter_this_thread(&self) -> Result<(), NetnsError> {
        if self.is_this_threads() {
            return Ok(());
        }
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter {
            path: self.path.clone(),
            source: std::io::Error::from(e),
        })
    }

    /// Whether this is the calling thread's own namespace: then nothing is to be joined.
    /// setns(2) needs CAP_SYS_ADMIN even for the namespace one is in, which a program with
    /// NET_ADMIN only (the NAT gateway agent managing its own pod's namespace) lacks.
    fn is_this_threads(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Ok(target), Ok(own)) = (
            self.file.metadata(),
            std::fs::metadata("/proc/thread-self/ns/net"),
        ) else {
            return false;
        };
        (target.dev(), target.ino()) == (own.dev(), own.ino())
    }

    /// Runs `f` on a fresh thread inside this namespace and returns its result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter_this_thread()?;
                    Ok(f())
                })
                .join()
                .map_err(|_| NetnsError::Thread {
                    path: self.path.clone(),
                })?
        })
    }

    /// A netlink route handle whose socket lives in this namespace. Its connection task is
    /// spawned on the current tokio runtime and ends when the handle is dropped.
    pub fn rtnetlink(&self) -> Result<rtnetlink::Handle, NetnsError> {
        // The socket registers with the runtime's reactor when it is created, on the helper
        // thread, so that thread must see the runtime.
        let runtime = tokio::runtime::Handle::current();
        let (connection, handle, _) = self
            .run(move || {
                let _entered = runtime.enter();
                rtnetlink::new_connection()
            })?
            .map_err(|source| NetnsError::Enter {
                path: self.path.clone(),
                source,
            })?;
        tokio::spawn(connection);
        Ok(handle)
    }
}
