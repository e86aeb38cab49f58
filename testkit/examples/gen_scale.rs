//! Writes the benchmark's generated tree: `gen_scale DIR N_SERVICES` (prints the main file).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(n)) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: gen_scale DIR N_SERVICES");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("create the directory");
    let main = shinken_testkit::r#gen::scale(dir, n).expect("write the tree");
    println!("{}", main.display());
}
