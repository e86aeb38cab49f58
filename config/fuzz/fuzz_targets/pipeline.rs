//! Arbitrary bytes -> decode -> parse as one main file -> `RawTree` -> `load::from_tree`:
//! every stage after reading must be total (never panic, never hang).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shinken_config::diag::Diagnostics;
use shinken_config::load;
use shinken_config::loader::RawTree;
use shinken_config::reader;
use shinken_config::source::SourceMap;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = reader::decode(data) else {
        return;
    };
    let main_file = PathBuf::from("fuzz/shinken.cfg");
    let mut sources = SourceMap::new();
    let file = sources.add(main_file.clone());
    let mut diag = Diagnostics::new();
    let parsed = reader::parse(&text, file, &mut diag);
    let tree = RawTree {
        main_file,
        sources,
        objects: shinken_config::object::normalise(parsed.objects, &mut diag),
        params: parsed.params,
    };
    let cfg = load::from_tree(tree, diag);
    std::hint::black_box(&cfg);
});
