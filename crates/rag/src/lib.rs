//! The RAG service, under construction. So far: the embedders (`embedding`), which turn
//! texts into vectors behind one trait, and the chunker (`chunking`), which cuts documents
//! into pieces of a model's token budget.

pub mod chunking;
pub mod embedding;
