//! Arbitrary bytes -> decode -> parse as one main file -> `RawTree` -> `load::from_tree`:
//! every stage after reading must be total (never panic, never hang).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shinken_config::diag::Diagnostics;
use shinken_config::load;
use shinken_config::loader::RawTree;
use shinken_config::reader;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = reader::decode(data) else {
        return;
    };
    let mut diag = Diagnostics::new();
    let tree = RawTree::from_text(PathBuf::from("fuzz/shinken.cfg"), &text, &mut diag);
    let cfg = load::from_tree(tree, diag);
    std::hint::black_box(&cfg);
});
