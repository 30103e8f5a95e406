//! The Qualys side (qualys.md): reading the ASSET_DATA_REPORT into the neutral model.

pub mod html;
pub mod lossy;
pub mod report;
