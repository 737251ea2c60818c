//! Avatars: the one place where a stranger's bytes reach a decoder.
//!
//! [`process`] decides the type from the bytes alone, decodes under the decoder's own limits
//! (dimensions and memory, checked from the header before any pixel buffer is allocated), crops
//! to a centred square, and re-encodes at fixed sizes as JPEG. Nothing of the upload survives but
//! its pixels: no EXIF, GPS, ICC profile or comment is written back. The result is named by a
//! hash of what was encoded, so the same image uploaded twice is stored once and its URLs can be
//! cached forever.
//!
//! [`AvatarStorage`] keeps the encoded files on local disk ([`DiskStorage`]) or in S3-compatible
//! object storage ([`S3Storage`]).

mod pipeline;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;

pub use pipeline::{
    peak_memory, probe, process, sniff, AvatarError, Limits, Processed, SourceFormat, SIZES,
};
pub use storage::{
    file_name_is_ours, AvatarFiles, AvatarStorage, DiskStorage, S3Settings, S3Storage,
    StorageError, CACHE_CONTROL, CONTENT_TYPE,
};
