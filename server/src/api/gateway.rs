//! etcd's gRPC gateway: the v3 API as JSON over HTTP on the client URLs (`POST /v3/kv/range`
//! with `{"key":"Zm9v"}`), as etcd 3.5 serves it with grpc-gateway v1.
//!
//! Owns:
//! - the route table, read from the protos' `google.api.http` annotations (the same source
//!   grpc-gateway generates etcd's routes from), so every annotated method is served;
//! - transcoding by the protos' descriptors with etcd's marshaler settings (`JSONPb{OrigName:
//!   true}`): responses use the proto field names (`create_revision`, `TTL`, `dbSize`), int64
//!   as strings, bytes as base64, enums by name, default values left out; requests also take
//!   lowerCamel names, numbers or strings for int64, enum names or numbers, and ignore unknown
//!   fields; an empty body is an empty request;
//! - the call: the gRPC services in process, over the same tonic router a gRPC client reaches
//!   (etcd's gateway dials its own gRPC listener), so every answer is the service's own;
//! - errors as grpc-gateway v1 writes them: `{"error":m,"code":c,"message":m}` with the HTTP
//!   status grpc-gateway maps each gRPC code to; 404 `Not Found` for an unknown `/v3/` path,
//!   405 `Method Not Allowed` for anything but POST;
//! - streams (`/v3/watch`, `/v3/lease/keepalive`, `/v3/maintenance/snapshot`): the request body
//!   is a sequence of JSON objects, each sent as it arrives; every response message is one
//!   `{"result":...}` line; an error ends the stream with `{"error":{"grpc_code",...}}`.
//!
//! Must never: answer anything the gRPC service did not (no state, no checks of its own), or
//! panic on a body, whatever it holds.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use futures::StreamExt;
use http::uri::PathAndQuery;
use http_body_util::BodyExt;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions, Value,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// How many decoded request messages of a stream may wait for the service.
const STREAM_QUEUE: usize = 16;

/// One gateway route: the gRPC method a `POST` path calls.
struct Route {
    method: MethodDescriptor,
    grpc_path: PathAndQuery,
}

/// The gateway: its routes and the gRPC router it calls.
#[derive(Clone)]
pub(super) struct Gateway {
    routes: Arc<BTreeMap<String, Route>>,
    grpc: axum::Router,
    max_body_bytes: usize,
}

/// Why the route table could not be built from the checked-in descriptors.
#[derive(Debug, thiserror::Error)]
pub(super) enum GatewayError {
    #[error("the etcd API descriptors do not decode: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    #[error("the etcd API descriptors lack the google.api.http extension")]
    NoHttpExtension,
    #[error("gRPC path /{0} is not a valid path")]
    BadPath(String),
}

impl Gateway {
    /// The gateway over `grpc` (the router serving etcd's gRPC services), accepting bodies up
    /// to `max_body_bytes`.
    pub(super) fn new(grpc: axum::Router, max_body_bytes: usize) -> Result<Self, GatewayError> {
        Ok(Gateway {
            routes: Arc::new(routes(etcd_api::FILE_DESCRIPTOR_SET)?),
            grpc,
            max_body_bytes,
        })
    }

    /// Serves `/v3/...` paths.
    pub(super) fn router(self) -> axum::Router {
        axum::Router::new()
            .route("/v3/{*path}", axum::routing::any(handle))
            .with_state(self)
    }
}

/// Every `post:` route of the services in `descriptors`, by HTTP path.
fn routes(descriptors: &[u8]) -> Result<BTreeMap<String, Route>, GatewayError> {
    let pool = DescriptorPool::decode(descriptors)?;
    let http = pool
        .get_extension_by_name("google.api.http")
        .ok_or(GatewayError::NoHttpExtension)?;
    let mut routes = BTreeMap::new();
    for service in pool.services() {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&http) {
                continue;
            }
            let Value::Message(rule) = options.get_extension(&http).into_owned() else {
                continue;
            };
            let grpc = format!("{}/{}", service.full_name(), method.name());
            let grpc_path = PathAndQuery::try_from(format!("/{grpc}"))
                .map_err(|_| GatewayError::BadPath(grpc.clone()))?;
            for post in post_paths(&rule) {
                // Two methods on one path: the first declared wins, as in grpc-gateway's mux.
                routes.entry(post).or_insert(Route {
                    method: method.clone(),
                    grpc_path: grpc_path.clone(),
                });
            }
        }
    }
    Ok(routes)
}

/// The `post` paths of an `HttpRule` and of its `additional_bindings` (etcd serves
/// `/v3/kv/lease/revoke` beside `/v3/lease/revoke` that way).
fn post_paths(rule: &DynamicMessage) -> Vec<String> {
    let mut paths = Vec::new();
    if rule.has_field_by_name("post") {
        if let Some(Value::String(p)) = rule.get_field_by_name("post").as_deref() {
            paths.push(p.clone());
        }
    }
    if let Some(Value::List(more)) = rule.get_field_by_name("additional_bindings").as_deref() {
        for binding in more {
            if let Value::Message(b) = binding {
                paths.extend(post_paths(b));
            }
        }
    }
    paths
}

async fn handle(State(gw): State<Gateway>, req: Request) -> Response {
    let Some(route) = gw.routes.get(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND);
    };
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED);
    }
    let input = route.method.input();
    let output = route.method.output();
    let mut grpc = tonic::client::Grpc::new(gw.grpc.clone());
    if let Err(e) = grpc.ready().await {
        return error_response(&Status::unavailable(e.to_string()));
    }
    let codec = DynamicCodec(output);
    let path = route.grpc_path.clone();
    let body = req.into_body();
    if route.method.is_client_streaming() {
        let requests = request_stream(body, input);
        let call = grpc
            .streaming(tonic::Request::new(requests), path, codec)
            .await;
        return stream_response(call).await;
    }
    let request = match unary_body(body, gw.max_body_bytes, input).await {
        Ok(m) => m,
        Err(status) => return error_response(&status),
    };
    if route.method.is_server_streaming() {
        let call = grpc
            .server_streaming(tonic::Request::new(request), path, codec)
            .await;
        return stream_response(call).await;
    }
    match grpc.unary(tonic::Request::new(request), path, codec).await {
        Ok(resp) => match to_json(resp.get_ref()) {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(status) => error_response(&status),
        },
        Err(status) => error_response(&status),
    }
}

/// The request of a unary call: the whole body as one JSON object (empty: the empty request).
async fn unary_body(
    body: Body,
    limit: usize,
    input: MessageDescriptor,
) -> Result<DynamicMessage, Status> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| Status::invalid_argument(format!("reading the request body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(input));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Status::invalid_argument(e.to_string()))?;
    request_message(input, value)
}

/// A request message from its JSON: unknown fields are dropped first (Go's jsonpb ignores
/// them), so that the strict decoding below still refuses an unknown enum name.
fn request_message(
    input: MessageDescriptor,
    mut value: serde_json::Value,
) -> Result<DynamicMessage, Status> {
    drop_unknown_fields(&input, &mut value);
    DynamicMessage::deserialize_with_options(input, value, &DeserializeOptions::new())
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Removes the keys of `value` (and of its nested messages) that name no field of `desc`,
/// by proto name or JSON name.
fn drop_unknown_fields(desc: &MessageDescriptor, value: &mut serde_json::Value) {
    let serde_json::Value::Object(fields) = value else {
        return;
    };
    fields.retain(|name, _| {
        desc.get_field_by_name(name).is_some() || desc.get_field_by_json_name(name).is_some()
    });
    for (name, v) in fields.iter_mut() {
        let Some(field) = desc
            .get_field_by_name(name)
            .or_else(|| desc.get_field_by_json_name(name))
        else {
            continue;
        };
        let prost_reflect::Kind::Message(inner) = field.kind() else {
            continue;
        };
        if field.is_map() {
            continue;
        }
        match v {
            serde_json::Value::Array(items) => items
                .iter_mut()
                .for_each(|i| drop_unknown_fields(&inner, i)),
            other => drop_unknown_fields(&inner, other),
        }
    }
}

/// The requests of a streaming call: each JSON object of the body, sent as soon as it has
/// arrived. The stream ends (the client's half-close) when the body ends or stops parsing.
fn request_stream(
    body: Body,
    input: MessageDescriptor,
) -> tokio_stream::wrappers::ReceiverStream<DynamicMessage> {
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        let mut body = body;
        let mut pending: Vec<u8> = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            let values = match complete_values(&mut pending) {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "gateway: a streamed request does not parse");
                    return;
                }
            };
            for v in values {
                match request_message(input.clone(), v) {
                    Ok(m) => {
                        if tx.send(m).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "gateway: a streamed request does not decode");
                        return;
                    }
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Takes the complete JSON values at the front of `pending`, leaving an incomplete one.
fn complete_values(pending: &mut Vec<u8>) -> Result<Vec<serde_json::Value>, serde_json::Error> {
    let mut values = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(pending).into_iter::<serde_json::Value>();
    let mut consumed = 0;
    loop {
        match it.next() {
            Some(Ok(v)) => {
                values.push(v);
                consumed = it.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(e),
            None => {
                consumed = it.byte_offset();
                break;
            }
        }
    }
    pending.drain(..consumed);
    Ok(values)
}

/// A streamed answer: one `{"result":...}` line per message; an error ends it with an
/// `{"error":{...}}` object (and sets the status when it comes before any message).
async fn stream_response(
    call: Result<tonic::Response<tonic::Streaming<DynamicMessage>>, Status>,
) -> Response {
    let mut messages = match call {
        Ok(resp) => resp.into_inner(),
        Err(status) => return stream_error_response(&status),
    };
    let first = match messages.message().await {
        Ok(Some(m)) => m,
        Ok(None) => return json_response(StatusCode::OK, Vec::new()),
        Err(status) => return stream_error_response(&status),
    };
    let head = futures::stream::once(async move { Ok(first) });
    let rest = futures::stream::unfold(messages, |mut s| async move {
        match s.message().await {
            Ok(Some(m)) => Some((Ok(m), s)),
            Ok(None) => None,
            Err(status) => Some((Err(status), s)),
        }
    });
    let lines = head.chain(rest).scan(false, |ended, item| {
        if *ended {
            return futures::future::ready(None);
        }
        let line = match item.and_then(|m| to_json(&m)) {
            Ok(json) => {
                let mut line = Vec::with_capacity(json.len() + 12);
                line.extend_from_slice(b"{\"result\":");
                line.extend_from_slice(&json);
                line.extend_from_slice(b"}\n");
                line
            }
            Err(status) => {
                *ended = true;
                stream_error_chunk(&status)
            }
        };
        futures::future::ready(Some(Ok::<_, std::convert::Infallible>(Bytes::from(line))))
    });
    let mut resp = Response::new(Body::from_stream(lines));
    set_json_headers(&mut resp);
    resp
}

/// `{"error":{"grpc_code":..,"http_code":..,"message":..,"http_status":..}}` (grpc-gateway
/// v1's StreamError with proto field names).
fn stream_error_chunk(status: &Status) -> Vec<u8> {
    let http = http_status_of(status.code());
    let mut err = serde_json::Map::new();
    let code = status.code() as i32;
    if code != 0 {
        err.insert("grpc_code".into(), code.into());
    }
    err.insert("http_code".into(), http.as_u16().into());
    if !status.message().is_empty() {
        err.insert("message".into(), status.message().into());
    }
    err.insert(
        "http_status".into(),
        http.canonical_reason().unwrap_or("").into(),
    );
    serde_json::to_vec(&serde_json::json!({ "error": err })).unwrap_or_default()
}

fn stream_error_response(status: &Status) -> Response {
    json_response(http_status_of(status.code()), stream_error_chunk(status))
}

/// etcd 3.5's error body: `{"error":m,"code":c,"message":m}` (grpc-gateway v1's errorBody,
/// fields in its order).
fn error_response(status: &Status) -> Response {
    #[derive(serde::Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
        code: i32,
        message: &'a str,
    }
    let body = ErrorBody {
        error: status.message(),
        code: status.code() as i32,
        message: status.message(),
    };
    json_response(
        http_status_of(status.code()),
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// grpc-gateway v1's `HTTPStatusFromCode`.
fn http_status_of(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    set_json_headers(&mut resp);
    resp
}

fn set_json_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if resp.status() == StatusCode::OK {
        // grpc-gateway forwards the gRPC response's headers as Grpc-Metadata-*.
        resp.headers_mut().insert(
            "grpc-metadata-content-type",
            HeaderValue::from_static("application/grpc"),
        );
    }
}

/// Go's `http.Error(w, http.StatusText(code), code)`.
fn plain(status: StatusCode) -> Response {
    let text = format!("{}\n", status.canonical_reason().unwrap_or(""));
    let mut resp = (status, text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A message as etcd's gateway writes it (`JSONPb{OrigName: true}`).
fn to_json(msg: &DynamicMessage) -> Result<Vec<u8>, Status> {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(true)
        .skip_default_fields(true);
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    msg.serialize_with_options(&mut ser, &options)
        .map_err(|e| Status::internal(format!("encoding the response as JSON: {e}")))?;
    Ok(out)
}

/// A tonic codec for messages known only by their descriptors: encodes any, decodes the
/// method's output type.
struct DynamicCodec(MessageDescriptor);

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.0.clone())
    }
}

struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        DynamicMessage::decode(self.0.clone(), bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding the response: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_annotated_etcd_method_is_routed() {
        let routes = routes(etcd_api::FILE_DESCRIPTOR_SET).expect("routes");
        for (path, grpc) in [
            ("/v3/kv/range", "/etcdserverpb.KV/Range"),
            ("/v3/kv/txn", "/etcdserverpb.KV/Txn"),
            ("/v3/watch", "/etcdserverpb.Watch/Watch"),
            ("/v3/lease/keepalive", "/etcdserverpb.Lease/LeaseKeepAlive"),
            ("/v3/kv/lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"),
            (
                "/v3/cluster/member/list",
                "/etcdserverpb.Cluster/MemberList",
            ),
            ("/v3/maintenance/status", "/etcdserverpb.Maintenance/Status"),
            (
                "/v3/maintenance/downgrade",
                "/etcdserverpb.Maintenance/Downgrade",
            ),
        ] {
            let route = routes
                .get(path)
                .unwrap_or_else(|| panic!("{path} not routed"));
            assert_eq!(route.grpc_path.as_str(), grpc, "{path}");
        }
        assert!(routes.len() >= 40, "{} routes", routes.len());
    }

    #[test]
    fn json_follows_etcds_marshaler() {
        let pool = DescriptorPool::decode(etcd_api::FILE_DESCRIPTOR_SET).expect("pool");
        let desc = pool
            .get_message_by_name("etcdserverpb.RangeResponse")
            .expect("RangeResponse");
        let resp = etcd_api::etcdserverpb::RangeResponse {
            header: Some(etcd_api::etcdserverpb::ResponseHeader {
                revision: 2,
                ..Default::default()
            }),
            kvs: vec![etcd_api::mvccpb::KeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                lease: 0,
            }],
            count: 1,
            more: false,
        };
        let msg = DynamicMessage::decode(desc, resp.encode_to_vec().as_slice()).expect("decode");
        let json: serde_json::Value =
            serde_json::from_slice(&to_json(&msg).expect("json")).expect("parse");
        assert_eq!(
            json,
            serde_json::json!({"header":{"revision":"2"},"kvs":[{"key":"Zm9v",
                "create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],
                "count":"1"})
        );
    }

    #[test]
    fn requests_take_proto_or_camel_names_strings_or_numbers() {
        let pool = DescriptorPool::decode(etcd_api::FILE_DESCRIPTOR_SET).expect("pool");
        let desc = pool
            .get_message_by_name("etcdserverpb.RangeRequest")
            .expect("RangeRequest");
        for body in [
            r#"{"key":"Zm9v","count_only":true,"revision":"7","sort_order":"DESCEND"}"#,
            r#"{"key":"Zm9v","countOnly":true,"revision":7,"sortOrder":2,"unknown":1}"#,
        ] {
            let value = serde_json::from_str(body).expect(body);
            let msg = request_message(desc.clone(), value).expect(body);
            let req = etcd_api::etcdserverpb::RangeRequest::decode(msg.encode_to_vec().as_slice())
                .expect("decode");
            assert_eq!(req.key, b"foo");
            assert!(req.count_only);
            assert_eq!(req.revision, 7);
            assert_eq!(req.sort_order, 2);
        }
    }

    #[test]
    fn an_unknown_enum_name_is_refused_where_unknown_fields_are_ignored() {
        let pool = DescriptorPool::decode(etcd_api::FILE_DESCRIPTOR_SET).expect("pool");
        let desc = pool
            .get_message_by_name("etcdserverpb.TxnRequest")
            .expect("TxnRequest");
        let ok = serde_json::json!({"compare":[{"key":"Zm9v","target":"VALUE","x":1}],"y":2});
        assert!(request_message(desc.clone(), ok).is_ok());
        let bad = serde_json::json!({"compare":[{"key":"Zm9v","target":"BOGUS"}]});
        let err = request_message(desc, bad).expect_err("BOGUS is no CompareTarget");
        assert_eq!(err.code(), Code::InvalidArgument);
    }

    #[test]
    fn a_stream_body_splits_into_complete_objects() {
        let mut pending = br#"{"a":1} {"b":"#.to_vec();
        let values = complete_values(&mut pending).expect("parse");
        assert_eq!(values, vec![serde_json::json!({"a":1})]);
        pending.extend_from_slice(br#"2}"#);
        let values = complete_values(&mut pending).expect("parse");
        assert_eq!(values, vec![serde_json::json!({"b":2})]);
        assert!(pending.iter().all(u8::is_ascii_whitespace));
        let mut bad = b"{bad".to_vec();
        assert!(complete_values(&mut bad).is_err());
    }
}
