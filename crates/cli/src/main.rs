//! The `ticktock` command.

fn main() {}
