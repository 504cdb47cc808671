//! Fuzz target `snapshot`: the checks are in `src/lib.rs` (`backorderd_fuzz::snapshot`),
//! shared with the main crate's regression tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| backorderd_fuzz::snapshot(data));
