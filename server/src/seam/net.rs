//! The network trait the server's client and peer traffic goes through.
//!
//! Owns: binding listeners and opening connections by `host:port`, as type-erased byte streams
//! that tonic/hyper run HTTP/2 over (in both worlds the wire protocol is real).
//!
//! Must never: resolve names or open sockets itself outside `real`.

use async_trait::async_trait;
use std::fmt::Debug;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A bidirectional byte stream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed connection, usable by tonic as an incoming stream item.
pub struct BoxIo(pub Box<dyn Io>);

impl Debug for BoxIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxIo")
    }
}

impl AsyncRead for BoxIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for BoxIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// A bound listener.
#[async_trait]
pub trait NetListener: Send + 'static {
    /// Waits for the next connection.
    async fn accept(&mut self) -> io::Result<BoxIo>;
    /// The bound address as `host:port`.
    fn local_addr(&self) -> String;
}

/// Listeners and connections.
#[async_trait]
pub trait Network: Send + Sync + Debug + 'static {
    /// Binds a listener on `host:port`.
    async fn bind(&self, addr: &str) -> io::Result<Box<dyn NetListener>>;
    /// Connects to `host:port`.
    async fn connect(&self, addr: &str) -> io::Result<BoxIo>;
}

/// An HTTP/1.1 GET of `path` (with its query) on `hostport`, over `net`: the status code and
/// the body.
pub async fn http_get(
    net: &dyn Network,
    hostport: &str,
    path: &str,
) -> Result<(u16, Vec<u8>), String> {
    http_request(net, hostport, http::Method::GET, path, &[], Vec::new()).await
}

/// An HTTP/1.1 request on `hostport`, over `net`, with extra headers and a body (etcd's peer
/// `/members/hashkv` is a GET with a JSON body): the status code and the body. One request per
/// connection, as curl sends it; the connection ends with the call.
pub async fn http_request(
    net: &dyn Network,
    hostport: &str,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    use http_body_util::BodyExt as _;
    let io = net
        .connect(hostport)
        .await
        .map_err(|e| format!("connect {hostport}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("handshake with {hostport}: {e}"))?;
    let driver = tokio::spawn(conn);
    let result = async {
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::HOST, hostport);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| format!("request {path}: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let code = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {path}: failed to read body of response: {e}"))?
            .to_bytes();
        Ok((code, body.to_vec()))
    }
    .await;
    driver.abort();
    result
}
