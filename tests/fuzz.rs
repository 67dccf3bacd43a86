//! Property tests: every parser, fed arbitrary bytes or mangled real
//! exports, returns records and problems and never panics. Each property
//! runs `CASES` inputs per format (override with PROPTEST_CASES).

use std::path::Path;

use papermap::ingest::{Format, IngestOptions, Parsed, parse_bytes};
use proptest::prelude::*;

const CASES: u32 = 1_000;
const FORMATS: [Format; 9] = [
    Format::Bibtex,
    Format::Ris,
    Format::Csv,
    Format::Tsv,
    Format::Json,
    Format::Listing,
    Format::Wos,
    Format::Medline,
    Format::EndNote,
];

fn run(bytes: &[u8], format: Option<Format>) -> usize {
    let opts = IngestOptions {
        format,
        ..Default::default()
    };
    let mut n = 0;
    // Errors are fine (binary input is refused); panics are not.
    let _ = parse_bytes(Path::new("fuzz.input"), bytes, &opts, &mut |p| {
        if let Parsed::Record { paper, .. } = p {
            // Records that come out must be usable downstream.
            let _ = paper.identity_keys();
            let _ = paper.embed_text();
        }
        n += 1;
    });
    n
}

fn real_samples() -> Vec<Vec<u8>> {
    [
        "zotero-export.bib",
        "scopus-export.ris",
        "arxiv-oai-snapshot.jsonl",
        "arxiv-api-listing.jsonl",
        "mini.jsonl",
    ]
    .iter()
    .map(|f| {
        let b = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(f),
        )
        .unwrap();
        b[..b.len().min(6_000)].to_vec()
    })
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), f in 0usize..10) {
        run(&bytes, FORMATS.get(f).copied());
    }

    #[test]
    fn structured_noise_never_panics(s in r#"(@[a-z]{0,8}[{(]|[{}()"=,#%\\$~@]|TY  - |ER  - |AB  - |PT J\n|PMID- |%0 |%T |   |      |[a-z ]{0,12}|\n|\r\n|[\[\]{}:,"]|&[a-z#0-9]{0,6};?|<[a-z/]{0,5}>?){0,300}"#, f in 0usize..10) {
        run(s.as_bytes(), FORMATS.get(f).copied());
    }

    #[test]
    fn mangled_real_exports_never_panic(which in 0usize..5, cuts in proptest::collection::vec((0usize..6_000, any::<u8>()), 1..20), truncate in 0usize..6_000) {
        let mut b = real_samples()[which].clone();
        for (pos, byte) in cuts {
            if !b.is_empty() {
                let i = pos % b.len();
                b[i] = byte;
            }
        }
        b.truncate(truncate.max(1));
        run(&b, None);
    }
}
