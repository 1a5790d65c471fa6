//! End-to-end tests: one binary, a module per subsystem. Fixtures are built by umoci
//! and skopeo from Debian's static busybox; berth never builds its own test images.

mod concurrency;
mod fetch_layout;
mod hostile_layouts;
mod registry;
mod run;
mod sandbox;
mod support;
