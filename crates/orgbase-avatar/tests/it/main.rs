//! The avatar pipeline on real encoded images, and both storages (disk, and a real
//! S3-compatible server).
mod pipeline;
mod storage;
