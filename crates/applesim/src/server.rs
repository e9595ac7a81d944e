//! The HTTP listener: DEP API at the root, admin API under `/abm`.

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

/// A running simulator listener. Dropping it stops the listener too (without waiting).
#[derive(Debug)]
pub struct RunningSim {
    /// `http://127.0.0.1:PORT`, no trailing slash: the DEP base URL (admin API under `/abm`).
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    /// Stop accepting, close all connections and wait for the listener task to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub(crate) fn router(sim: AppleSim) -> Router {
    Router::new()
        .nest("/abm", crate::admin::router())
        .fallback(crate::dep::dep_entry)
        .with_state(sim)
}

impl AppleSim {
    /// Serve the DEP API (at the root) and the admin HTTP API (under `/abm`) on one
    /// listener; returns once listening. `127.0.0.1:0` picks a free port.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let host = match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        let base_url = format!("http://{host}:{}", addr.port());
        let (stop, mut stopped) = watch::channel(false);
        let app = router(self.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
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
        Ok(RunningSim {
            base_url,
            addr,
            stop,
            task: Some(task),
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
