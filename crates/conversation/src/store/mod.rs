//! The conversation service's queries, one file per resource. Each takes a connection, and
//! every query filters by tenant: another tenant's rows are never read or written.

mod answers;
mod conversations;
mod messages;

pub use answers::*;
pub use conversations::*;
pub use messages::*;
