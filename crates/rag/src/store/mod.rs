//! The RAG service's queries, one file per resource (and the ingestion queue's own);
//! every one a caller can reach filters by tenant.

mod collections;
mod documents;
mod queue;
mod search;

pub use collections::*;
pub use documents::*;
pub use queue::*;
pub use search::*;
