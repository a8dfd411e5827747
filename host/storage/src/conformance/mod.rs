//! The tests every backend passes: `tests/conformance.rs` runs each of
//! them on a fresh SQLite database and on a fresh PostgreSQL database.
//! A backend of one's own can run them too (`conformance::all()`).
//! One module per trait; each test takes a backend that starts empty.
use crate::Backend;

mod aws;
mod components;
mod evolution;
mod http;
mod jobs;
mod leases;
mod ledger;
mod memory;
mod research;
mod sessions;
mod stats;

/// One conformance test: a name and a function that panics on failure.
pub type Test = (&'static str, fn(&dyn Backend));

/// Every conformance test.
pub fn all() -> Vec<Test> {
    [
        memory::TESTS,
        sessions::TESTS,
        stats::TESTS,
        research::TESTS,
        aws::TESTS,
        evolution::TESTS,
        http::TESTS,
        leases::TESTS,
        ledger::TESTS,
        components::TESTS,
        jobs::TESTS,
    ]
    .concat()
}

/// Runs every test on a backend `make` creates for it; returns the names
/// of those that failed, with their messages.
pub fn run(make: &dyn Fn(&str) -> Box<dyn Backend>) -> Vec<String> {
    let mut failed = Vec::new();
    for (name, test) in all() {
        let backend = make(name);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(backend.as_ref())));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{name}: {message}"));
        }
    }
    failed
}
