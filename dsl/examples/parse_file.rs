fn main() {
    let path = std::env::args().nth(1).expect("path");
    let src = std::fs::read_to_string(&path).expect("read");
    match yimen_dsl::parse(&path, &src) {
        Ok(ast) => {
            let (p, d) = yimen_dsl::lower(&path, &ast);
            println!("{} nodes, {} comments, diags {:?}", p.nodes.len(), ast.comments.len(), d);
        }
        Err(d) => println!("{d:?}"),
    }
}
