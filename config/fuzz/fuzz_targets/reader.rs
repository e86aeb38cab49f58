//! Arbitrary bytes -> `reader::decode` -> `reader::parse`: must never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shinken_config::diag::Diagnostics;
use shinken_config::reader;
use shinken_config::source::SourceMap;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = reader::decode(data) else {
        return;
    };
    let mut sources = SourceMap::new();
    let file = sources.add(PathBuf::from("fuzz.cfg"));
    let mut diag = Diagnostics::new();
    let _ = reader::parse(&text, file, &mut diag);
});
