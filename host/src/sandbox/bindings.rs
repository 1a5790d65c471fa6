//! The one `bindgen!` of the host: Rust types and traits for `wit/handler.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cimd-handler",
});
