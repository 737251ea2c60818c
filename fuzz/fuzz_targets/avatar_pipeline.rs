//! Arbitrary bytes through the whole avatar path: sniff, decode under limits, crop, resize,
//! JPEG re-encode (`orgbase_avatar::process`), with limits small enough that the fuzzer stays
//! fast. A panic, an abort, an allocation past `-rss_limit_mb` or a run past `-timeout` is a
//! finding; so is a success that breaks one of the invariants below.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orgbase_avatar::{process, AvatarError, Limits, SIZES};

const LIMITS: Limits = Limits {
    max_bytes: 1024 * 1024,
    max_dimension: 1024,
    max_decoded_bytes: 16 * 1024 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let processed = match process(data, &LIMITS) {
        Ok(p) => p,
        Err(e) => {
            // Refusals are expected; they must be the ones the limits allow.
            match e {
                AvatarError::Empty => assert!(data.is_empty()),
                AvatarError::TooLarge { max } => {
                    assert_eq!(max, LIMITS.max_bytes);
                    assert!(data.len() > LIMITS.max_bytes);
                }
                AvatarError::TooManyPixels { max, .. } => assert_eq!(max, LIMITS.max_dimension),
                AvatarError::UnsupportedType | AvatarError::Undecodable(_) => {}
            }
            return;
        }
    };

    // What the limits promise about anything accepted.
    assert!(processed.source_width >= 1 && processed.source_width <= LIMITS.max_dimension);
    assert!(processed.source_height >= 1 && processed.source_height <= LIMITS.max_dimension);

    // The name: 32 lowercase hex characters (128 bits of SHA-256).
    assert_eq!(processed.hash.len(), 32, "hash {:?}", processed.hash);
    assert!(
        processed
            .hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "hash {:?}",
        processed.hash
    );

    // One file per size, in order, each a JPEG that decodes to that square.
    let sizes: Vec<u32> = processed.files.iter().map(|(s, _)| *s).collect();
    assert_eq!(sizes, SIZES);
    for (size, bytes) in &processed.files {
        assert!(bytes.starts_with(&[0xFF, 0xD8]), "{size}: not a JPEG");
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
            .unwrap_or_else(|e| panic!("{size}: the re-encoded JPEG does not decode: {e}"));
        assert_eq!((img.width(), img.height()), (*size, *size), "{size}: wrong dimensions");
        assert_only_pixels(*size, bytes);
    }
});

/// Nothing of the upload survives but its pixels: the JPEG holds a JFIF header, its tables and
/// one scan, and no EXIF, ICC, other application segment or comment.
fn assert_only_pixels(size: u32, jpeg: &[u8]) {
    let mut at = 2;
    let mut kinds = Vec::new();
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let kind = jpeg[at + 1];
        kinds.push(kind);
        if kind == 0xDA {
            break;
        }
        at += 2 + u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
    }
    assert_eq!(kinds.first(), Some(&0xE0), "{size}: segments {kinds:x?}");
    assert_eq!(kinds.last(), Some(&0xDA), "{size}: segments {kinds:x?}");
    assert!(
        kinds.iter().all(|k| !matches!(k, 0xE1..=0xEF | 0xFE)),
        "{size}: segments {kinds:x?}"
    );
    assert!(jpeg.ends_with(&[0xFF, 0xD9]), "{size}: no end of image");
}
