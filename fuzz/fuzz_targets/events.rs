//! Fuzz target `events`: the checks are in `src/lib.rs` (`backorderd_fuzz::events`),
//! shared with the main crate's regression tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| backorderd_fuzz::events(data));
