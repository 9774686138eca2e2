//! Crash-safe checkpoints of a search run: one directory per generation, written atomically, each
//! with a manifest of sha256 digests and the digest of the configuration it belongs to.

pub mod room;
pub mod store;

pub use room::{available_bytes, human_bytes};
pub use store::{
    sha256_hex, CheckpointError, CheckpointFile, CheckpointStore, LoadedCheckpoint, Manifest, ManifestEntry,
    SavedCheckpoint, SkipReason, SkippedCheckpoint, Upcoming, DEFAULT_KEEP_LAST, MANIFEST_FILE,
};
