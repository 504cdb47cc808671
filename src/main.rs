use clap::Parser;

fn main() {
    let cli = backorderd::cli::Cli::parse();
    if let Err(err) = backorderd::cli::run(cli) {
        eprintln!("error: {}", backorderd::cli::describe(&err));
        std::process::exit(backorderd::cli::exit_code(&err));
    }
}
