//! The Qualys side (qualys.md): reading the ASSET_DATA_REPORT into the neutral model.

pub mod advice;
pub mod bounds;
pub mod client;
pub mod detection;
pub mod entities;
pub mod follow;
pub mod html;
pub mod http;
pub mod lossy;
pub mod readahead;
pub mod report;
