//! The RAG service, under construction: so far its embedders (`embedding`), which turn
//! texts into vectors behind one trait.

pub mod embedding;
