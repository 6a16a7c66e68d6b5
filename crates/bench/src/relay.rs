//! A bare TCP relay in a process of its own: the least work any process placed between
//! the agent and its client must do (read every byte from one socket, write it to
//! another), with none of HTTP, SigV4 or Lambda's framing. The throughput section streams
//! the direct request through it, which gives the ceiling that option 2, a process that
//! must do this and more, can be compared with on the same machine.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use anyhow::{bail, Context as _, Result};

/// Bytes read per `read` in each direction: generous, so that the relay is not held
/// back by small copies (hyper's reads in the function grow up to ~400 KiB).
const COPY_BUFFER: usize = 256 * 1024;

/// Serves the relay until the process is killed: accepts on an ephemeral port of
/// 127.0.0.1, prints that port on stdout, and copies each connection to `target`.
pub(crate) async fn serve(target: &str) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the relay")?;
    println!(
        "{}",
        listener
            .local_addr()
            .context("reading the relay's port")?
            .port()
    );
    loop {
        let (mut inbound, _) = listener.accept().await.context("accepting")?;
        let target = target.to_owned();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(&target).await else {
                return;
            };
            // As the function's own connections: no Nagle delay on either side.
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut inbound,
                &mut outbound,
                COPY_BUFFER,
                COPY_BUFFER,
            )
            .await;
        });
    }
}

/// A relay process started by the driver (this binary with `--relay-to`).
pub(crate) struct RelayProcess {
    child: Child,
    pid: u32,
    url: String,
}

impl RelayProcess {
    /// Starts a relay to `target` (`host:port`) and waits for its port.
    pub(crate) async fn spawn(target: &str) -> Result<Self> {
        let exe = crate::machine::own_exe()?;
        let mut child = Command::new(exe)
            .args(["--relay-to", target])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the relay process")?;
        let pid = child.id().context("the relay exited at once")?;
        let stdout = child.stdout.take().context("no stdout from the relay")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .context("reading the relay's port")?;
        let Ok(port) = line.trim().parse::<u16>() else {
            bail!("the relay printed {line:?} instead of its port");
        };
        Ok(Self {
            child,
            pid,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give an AgentCore client.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Stops the relay.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}
