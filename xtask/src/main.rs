//! `cargo xtask <command>`: project automation.
use clap::Parser;

#[derive(Parser)]
#[command(name = "xtask", about = "bitnet project automation")]
enum Cmd {}

fn main() {
    match Cmd::parse() {}
}
