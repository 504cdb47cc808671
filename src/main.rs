use clap::Parser;

// The recalculation allocates and frees many small strings per batch;
// mimalloc does that several times faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option `purge_delay` (its index in `mi_option_t`, the same
/// in mimalloc 2 and 3; the Rust binding leaves it out of its constants).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

fn main() {
    // Freed memory is given back to the OS once it has been unused for 5 s
    // rather than mimalloc's 1 s. A purge gives back whatever is free at
    // that moment, and an audit or a full run frees each chunk's memory
    // just before the next chunk takes it again: every page given back came
    // back zeroed by the kernel, a fifth of the audit's time on the bench
    // book (sys 0.2-0.55 s of about 2 s; 0.07-0.14 s with the delay).
    // SAFETY: sets a plain option of the allocator linked into this binary.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 5_000) };
    // A usage mistake exits 1: the contract keeps 2 for refused input.
    let cli = backorderd::cli::Cli::try_parse().unwrap_or_else(|err| {
        let code = if err.use_stderr() { 1 } else { 0 };
        let _ = err.print();
        std::process::exit(code);
    });
    if let Err(err) = backorderd::cli::run(cli) {
        eprintln!("error: {}", backorderd::cli::describe(&err));
        std::process::exit(backorderd::cli::exit_code(&err));
    }
}
