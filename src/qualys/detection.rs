//! The detection source's documents (qualys.md §7): a page of Host List Detection
//! (`page`), a KnowledgeBase answer (`kb`), and the Host List's ID set (`ids`), each read
//! as a stream over a small walker (`walk`) that keeps one element's text at a time.
//!
//! What they share with the report parser (`report.rs`): comments, keep-alive comments
//! and padded CDATA anywhere; tags broken over lines (`<RESULTS\n>`); entities from a
//! DOCTYPE never expanded; every text field bounded; a Qualys error document
//! (SIMPLE_RETURN) is an error that quotes it; a document that does not close its root
//! is incomplete, never half-used. The documents are not wired into a run yet.

pub mod fetch;
pub mod ids;
pub mod kb;
pub mod kbcache;
pub mod page;
pub mod sent;
pub mod walk;

pub use walk::DocError;
