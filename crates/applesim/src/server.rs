//! The listeners: DEP API at the root, Apps and Books under `/mdm/v2` and admin API under
//! `/abm` on one, APNs on another.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::dep::ConnKill;
use crate::sim::AppleSim;

/// A running simulator: the DEP and admin listener and the APNs listener. Dropping it
/// stops both listeners too (without waiting).
#[derive(Debug)]
pub struct RunningSim {
    /// `http://127.0.0.1:PORT`, no trailing slash: the DEP base URL (admin API under `/abm`,
    /// Apps and Books under `/mdm/v2`).
    pub base_url: String,
    /// The bound address of the DEP and admin listener.
    pub addr: SocketAddr,
    /// `{base_url}/mdm/v2`: the Apps and Books API v2 base URL (Apple's
    /// `https://vpp.itunes.apple.com/mdm/v2`).
    pub vpp_url: String,
    /// `https://127.0.0.1:PORT`, no trailing slash: the APNs base URL (HTTP/2 over TLS with
    /// a client certificate; trust [`AppleSim::apns_ca_pem`]).
    pub apns_url: String,
    /// The bound address of the APNs listener.
    pub apns_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSim {
    /// Stop accepting, close all connections and wait for the listener tasks to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// `HOST:PORT` of a bound address, with `127.0.0.1` for an unspecified IPv4 address and
/// brackets around IPv6 addresses.
pub(crate) fn host_port(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("{host}:{}", addr.port())
}

pub(crate) fn router(sim: AppleSim) -> Router {
    let vpp = axum::routing::any(crate::vppapi::entry);
    Router::new()
        .nest("/abm", crate::admin::router())
        .route(crate::vppapi::PREFIX, vpp.clone())
        .route(&format!("{}/{{*rest}}", crate::vppapi::PREFIX), vpp)
        .fallback(crate::dep::dep_entry)
        .with_state(sim)
}

impl AppleSim {
    /// Serve the DEP API (at the root), the Apps and Books API (under `/mdm/v2`) and the admin
    /// HTTP API (under `/abm`) on `addr`, and APNs on a free port of the same IP address; returns once both listen. `127.0.0.1:0`
    /// picks a free port.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        self.serve_with_apns(addr, SocketAddr::new(addr.ip(), 0)).await
    }

    /// Like [`AppleSim::serve`], with the APNs listener on `apns_addr`.
    pub async fn serve_with_apns(&self, addr: SocketAddr, apns_addr: SocketAddr) -> std::io::Result<RunningSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let apns_listener = TcpListener::bind(apns_addr).await?;
        let apns_addr = apns_listener.local_addr()?;
        let base_url = format!("http://{}", host_port(addr));
        let (stop, stopped) = watch::channel(false);
        let app = router(self.clone());
        let mut dep_stopped = stopped.clone();
        let dep = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = dep_stopped.changed() => break,
                    accepted = listener.accept() => {
                        let (stream, _) = match accepted {
                            Ok(x) => x,
                            Err(e) => {
                                tracing::warn!("accept failed: {e}");
                                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                                continue;
                            }
                        };
                        let _ = stream.set_nodelay(true);
                        let app = app.clone();
                        conns.spawn(serve_connection(stream, app));
                        // Reap finished connection tasks.
                        while conns.try_join_next().is_some() {}
                    }
                }
            }
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        });
        let apns = tokio::spawn(crate::apns::accept_loop(self.clone(), apns_listener, stopped));
        Ok(RunningSim {
            vpp_url: format!("{base_url}{}", crate::vppapi::PREFIX),
            base_url,
            addr,
            apns_url: crate::apns::https_url(apns_addr),
            apns_addr,
            stop,
            tasks: vec![dep, apns],
        })
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, app: Router) {
    let kill = Arc::new(Notify::new());
    let k = kill.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnKill(k.clone()));
        let app = app.clone();
        async move { app.oneshot(req.map(axum::body::Body::new)).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!("connection ended: {e}");
            }
        }
        // DropConnection fault: drop the connection (and its socket) without answering.
        _ = kill.notified() => {}
    }
}
