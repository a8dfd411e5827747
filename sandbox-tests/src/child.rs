//! A server in a child process on a loopback port, for the tests and
//! benches that run a real peer (`moto_server`, `wasmtime serve`, uvicorn).
//! The child leads a process group of its own and the whole group is killed
//! (SIGKILL) and the child reaped when dropped: a server that forks workers
//! (uvicorn `--workers`) would otherwise leave them running.
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

/// A loopback address free at the time of the call, for a child to listen on.
pub fn free_loopback_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port")
}

pub struct ChildServer {
    child: Child,
}

impl ChildServer {
    /// Spawns `command` with no stdin, in a process group of its own.
    pub fn spawn(command: &mut Command) -> std::io::Result<ChildServer> {
        let child = command.stdin(Stdio::null()).process_group(0).spawn()?;
        Ok(ChildServer { child })
    }

    /// How it exited, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the group the child leads (`process_group(0)`);
        // the child is not reaped yet, so its pid (the group id) is not reused.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
