//! Generated protobuf types and gRPC stubs for every Agentic service, and the codec
//! they use ([`codec`]).

pub mod codec;

/// The descriptor set of every proto in the workspace, with imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/agentic_descriptor.bin"));

pub mod user {
    pub mod v1 {
        tonic::include_proto!("agentic.user.v1");
    }
}

pub mod agent {
    pub mod v1 {
        tonic::include_proto!("agentic.agent.v1");
    }
}

pub mod conversation {
    pub mod v1 {
        tonic::include_proto!("agentic.conversation.v1");
    }
}

pub mod rag {
    pub mod v1 {
        tonic::include_proto!("agentic.rag.v1");
    }
}
