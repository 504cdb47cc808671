use clap::Parser;

// The recalculation allocates and frees many small strings per batch;
// mimalloc does that several times faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = backorderd::cli::Cli::parse();
    if let Err(err) = backorderd::cli::run(cli) {
        eprintln!("error: {}", backorderd::cli::describe(&err));
        std::process::exit(backorderd::cli::exit_code(&err));
    }
}
