//! `hms_pyo3_bench`: a benchmark-only Python extension built with PyO3 that
//! runs Echo through exactly the dispatch behind `hms_method_call` (a method
//! resolved once, then `hms_ffi::runtime::call_method`), with no C ABI in
//! between. benchmarks/python/run.py compares the CFFI binding against it
//! (`pyo3_echo_64`): it is what a hand-written native extension would cost.
//!
//! ```python
//! import hms_pyo3_bench
//! bridge = hms_pyo3_bench.Bridge()          # own runtime, Echo resolved once
//! out = bridge.echo(request_bytes)          # protobuf EchoRequest in, EchoResponse out
//! ```
//!
//! The module links the core statically (its own copy, with its own handle
//! tables), so its runtime is not one the CFFI binding sees. Calls hold the
//! GIL (no `allow_threads`): the fastest a PyO3 extension can be, so the
//! comparison is the strictest one for the binding.
#![forbid(unsafe_code)]

use std::cell::RefCell;

use hms_ffi::codec::Format;
use hms_ffi::config::Settings;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const ECHO: &str = "hms.sys.v1.System/Echo";

thread_local! {
    /// One response buffer per thread, reused (the binding's `hms_buf` pair
    /// is reused the same way).
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn py_error(error: hms_ffi::HmsError) -> PyErr {
    PyRuntimeError::new_err(format!("HMS status {:?}: {}", error.code, error.message))
}

/// A runtime of the core with Echo resolved once in protobuf.
#[pyclass(frozen)]
struct Bridge {
    runtime: u64,
    echo: u64,
}

#[pymethods]
impl Bridge {
    #[new]
    fn new() -> PyResult<Self> {
        let runtime = hms_ffi::runtime::create(Settings::default()).map_err(py_error)?;
        let echo =
            hms_ffi::runtime::resolve_method(runtime, ECHO, Format::Protobuf).map_err(py_error)?;
        Ok(Bridge { runtime, echo })
    }

    /// Echo: a serialized `hms.sys.v1.EchoRequest` in, the serialized
    /// `EchoResponse` out (one copy into a new `bytes`).
    fn echo<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        OUT.with_borrow_mut(|out| {
            out.clear();
            hms_ffi::runtime::call_method(self.echo, request, out).map_err(py_error)?;
            Ok(PyBytes::new(py, out))
        })
    }

    /// The ABI version word, as `hms_abi_version()` returns it: the
    /// cheapest call into the extension (its floor).
    #[staticmethod]
    fn abi_version() -> u32 {
        (hms_ffi::ABI_VERSION_MAJOR << 16) | hms_ffi::ABI_VERSION_MINOR
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = hms_ffi::runtime::free_method(self.echo);
        let _ = hms_ffi::runtime::free(self.runtime);
    }
}

#[pymodule]
mod hms_pyo3_bench {
    #[pymodule_export]
    use super::Bridge;
}
