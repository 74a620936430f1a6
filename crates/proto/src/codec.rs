//! The codec every generated client and server uses: prost's, with decode errors a client
//! can act on.
//!
//! prost refuses messages nested deeper than its recursion limit (100 messages). In this
//! suite only the free-form `google.protobuf.Struct` fields nest that deep, so such a
//! request is `INVALID_ARGUMENT` naming the field (`agent.config`) with the stated limit
//! ([`MAX_STRUCT_DEPTH`], which services also enforce on values that do decode), and a
//! `google.rpc.BadRequest` detail. Any other undecodable message stays `INTERNAL`, as
//! gRPC asks, with a short message that names no internal type.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

/// Levels of nesting a `google.protobuf.Struct` field may hold: the field's own object is
/// level 1, and each object or list inside it one more.
pub const MAX_STRUCT_DEPTH: usize = 32;

/// The description of a field nested past [`MAX_STRUCT_DEPTH`].
pub fn too_deep() -> String {
    format!("must nest at most {MAX_STRUCT_DEPTH} levels of objects and lists")
}

/// prost's codec with [`AgenticDecoder`]; generated code names it by path.
#[derive(Debug, Clone)]
pub struct AgenticCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for AgenticCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for AgenticCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = AgenticDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        AgenticDecoder(PhantomData)
    }
}

/// Decodes `U` as prost does; see the module's doc for its errors.
#[derive(Debug, Clone)]
pub struct AgenticDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for AgenticDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|error| decode_error_status(&error.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The messages a `Struct` field is made of: the path to a field stops at them.
const STRUCT_PARTS: &[&str] = &["Struct", "Value", "ListValue", "FieldsEntry"];

/// The status for prost's error text: `failed to decode Protobuf message: Inner.field:
/// ... Outer.field: description` (innermost first).
fn decode_error_status(error: &str) -> Status {
    let Some(trail) = error.strip_prefix("failed to decode Protobuf message: ") else {
        return undecodable();
    };
    if !trail.ends_with("recursion limit reached") {
        return undecodable();
    }
    // `Message.field` steps, outermost first, up to the first part of a Struct.
    let mut path = Vec::new();
    for step in trail
        .split(": ")
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip(1)
    {
        let Some((message, field)) = step.split_once('.') else {
            break;
        };
        if STRUCT_PARTS.contains(&message) {
            break;
        }
        path.push(field);
    }
    if path.is_empty() {
        return undecodable();
    }
    let field = path.join(".");
    let description = too_deep();
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid argument: {field}: {description}"),
        ErrorDetails::with_bad_request_violation(field, description),
    )
}

fn undecodable() -> Status {
    Status::internal("the message could not be decoded")
}

#[cfg(test)]
mod tests {
    use prost_types::value::Kind;
    use prost_types::{ListValue, Struct, Value};

    use super::*;
    use crate::agent::v1 as pb;

    /// A Struct `depth` levels deep (its own object is level 1): objects inside objects,
    /// or objects and lists taking turns.
    fn nested(depth: usize, with_lists: bool) -> Struct {
        let mut inner = Value {
            kind: Some(Kind::StructValue(Struct::default())),
        };
        for level in (2..depth).rev() {
            let kind = if with_lists && level % 2 == 0 {
                Kind::ListValue(ListValue {
                    values: vec![inner],
                })
            } else {
                Kind::StructValue(Struct {
                    fields: [("k".to_owned(), inner)].into(),
                })
            };
            inner = Value { kind: Some(kind) };
        }
        if depth <= 1 {
            return Struct::default();
        }
        Struct {
            fields: [("k".to_owned(), inner)].into(),
        }
    }

    fn tool_request(arguments: Struct) -> Vec<u8> {
        use crate::conversation::v1 as c;
        c::AppendMessagesRequest {
            messages: vec![c::Message {
                tool_call: Some(c::ToolCall {
                    arguments: Some(arguments),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn request(config: Struct) -> Vec<u8> {
        pb::CreateAgentRequest {
            agent: Some(pb::Agent {
                config: Some(config),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<pb::CreateAgentRequest, Status> {
        pb::CreateAgentRequest::decode(bytes).map_err(|e| decode_error_status(&e.to_string()))
    }

    fn decode_tool(bytes: &[u8]) -> Result<crate::conversation::v1::AppendMessagesRequest, Status> {
        crate::conversation::v1::AppendMessagesRequest::decode(bytes)
            .map_err(|e| decode_error_status(&e.to_string()))
    }

    /// The stated limit must hold below prost's, in the most deeply placed field too.
    #[test]
    fn a_struct_at_the_stated_depth_decodes_in_every_field() {
        for with_lists in [false, true] {
            let decoded = decode(&request(nested(MAX_STRUCT_DEPTH, with_lists)));
            assert!(decoded.is_ok(), "{decoded:?}");
            let decoded = decode_tool(&tool_request(nested(MAX_STRUCT_DEPTH, with_lists)));
            assert!(decoded.is_ok(), "{decoded:?}");
        }
    }

    #[test]
    fn a_repeated_field_on_the_way_is_named_without_an_index() {
        let status = decode_tool(&tool_request(nested(60, false))).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("BadRequest").field_violations[0];
        assert_eq!(violation.field, "messages.tool_call.arguments");
    }

    #[test]
    fn a_struct_past_the_recursion_limit_names_its_field() {
        let status = decode(&request(nested(60, false))).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(
            status.message(),
            format!("invalid argument: agent.config: {}", too_deep())
        );
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("BadRequest").field_violations[0];
        assert_eq!(violation.field, "agent.config");
    }

    #[test]
    fn garbage_is_internal_and_names_no_type() {
        let status = decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "the message could not be decoded");
    }
}
