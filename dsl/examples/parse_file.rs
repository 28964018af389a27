fn main() {
    let path = std::env::args().nth(1).expect("path");
    let src = std::fs::read_to_string(&path).expect("read");
    match yimen_dsl::fmt::format_source(&path, &src) {
        Ok(out) => print!("{out}"),
        Err(d) => println!("{d:?}"),
    }
}
