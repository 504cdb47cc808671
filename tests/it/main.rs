//! One integration-test binary: every test drives the real `backorderd`
//! binary the way a user would.

mod storage;
mod support;
