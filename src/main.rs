use clap::Parser;

// The recalculation allocates and frees many small strings per batch;
// mimalloc does that several times faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
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
