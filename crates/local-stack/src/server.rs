//! An axum router served in the background on a local port, stopped on request: the
//! shape shared by the API Gateway emulator and the Lambda streaming shim.

use std::net::SocketAddr;

/// A router being served by a background task.
pub struct BackgroundServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl BackgroundServer {
    /// Binds `listen` and serves `app` until [`BackgroundServer::shutdown`]; `name` labels
    /// the log line if serving fails.
    pub async fn start(
        listen: SocketAddr,
        app: axum::Router,
        name: &'static str,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, server = name, "server stopped");
            }
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving. Streams still open are cut: the caller is shutting the stack down.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
        let _ = self.task.await;
    }
}
