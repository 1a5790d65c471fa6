//! Runtime: berth as an OCI runtime, the one podman and containerd drive through runc's
//! command line (`berth-runtime create|start|state|kill|delete …`).
//!
//! A container is made from a **bundle** (a directory with `config.json`, the OCI runtime
//! spec's configuration): [`config::translate`] turns the configuration into a
//! [`run::Container`](crate::run::Container), refusing by JSON path every field berth
//! does not honour, and [`run::create`](crate::run::create) sets it up through the same
//! clone, child and mount code as `berth run`. What is OCI-specific lives here: the
//! translation, the seccomp compiler, the hooks, the console socket and the state kept
//! between commands. The verbs themselves are `ops::runtime_*`.
//!
//! Glossary (the runtime spec's words, and runc's where the spec has none):
//! - **container ID**: the name the caller gives (`[A-Za-z0-9_+.-]`, as runc accepts).
//! - **state root**: `--root`, default [`state::DEFAULT_ROOT`]; one directory per container
//!   holds its **record** (`state.json`, written by rename) and its exec FIFO.
//! - **init**: the container's first process. `create` leaves it set up and blocked before
//!   `execve` on the **exec FIFO**; `start` writes a byte there.
//! - **status**: `created` (the init waits), `running` (it exec'd), `stopped` (it is gone),
//!   derived at each command from the init's pid, its start time (a reused pid is not the
//!   init) and whether the FIFO still exists, as runc does. Nothing is cached.
//! - **console socket**: a unix socket the caller listens on; with `process.terminal`,
//!   `create` sends the pty master over it (SCM_RIGHTS) and keeps no copy.
//! - **hooks**: programs run at lifecycle points with the state JSON on stdin:
//!   prestart/createRuntime (by `create`, in berth's namespaces), createContainer (by
//!   `create`, in the container's), startContainer (by the init, after `start`),
//!   poststart (by `start`), poststop (by `delete`).

pub mod config;
pub mod console;
mod error;
pub mod hooks;
pub mod seccomp;
pub mod state;

pub use error::RuntimeError;
