use orgbase_avatar::testing::images;
use orgbase_avatar::{process, AvatarError, Limits, SourceFormat, SIZES};

fn decoded(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).expect("a JPEG we made")
}

/// The marker segments of a JPEG up to its scan, in order (APP0 is FFE0, APP1 EXIF FFE1,
/// APP2 ICC FFE2, COM FFFE).
fn segments(jpeg: &[u8]) -> Vec<u8> {
    let mut at = 2;
    let mut kinds = Vec::new();
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let kind = jpeg[at + 1];
        kinds.push(kind);
        if kind == 0xDA {
            break;
        }
        let len = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
        at += 2 + len;
    }
    kinds
}

#[test]
fn each_format_becomes_square_jpegs_of_every_size() {
    for (bytes, format) in [
        (images::jpeg(1200, 800), SourceFormat::Jpeg),
        (images::png(300, 700), SourceFormat::Png),
        (images::webp(640, 640), SourceFormat::WebP),
        (images::animated_gif(100, 60), SourceFormat::Gif),
    ] {
        let p = process(&bytes, &Limits::default()).expect("a usable image");
        assert_eq!(p.source_format, format);
        assert_eq!(p.files.len(), SIZES.len());
        assert_eq!(p.hash.len(), 32);
        for ((size, png), expected) in p.files.iter().zip(SIZES) {
            assert_eq!(*size, expected);
            let img = decoded(png);
            assert_eq!(
                (img.width(), img.height()),
                (expected, expected),
                "{format:?}"
            );
        }
    }
}

#[test]
fn the_first_frame_of_an_animation_is_used() {
    let p = process(&images::animated_gif(64, 64), &Limits::default()).unwrap();
    let img = decoded(&p.files[0].1).to_rgba8();
    let px = img.get_pixel(256, 256).0;
    assert!(
        px[0] > 200 && px[2] < 50,
        "the first frame is red, got {px:?}"
    );
}

#[test]
fn transparency_is_composited_onto_white() {
    // Left half opaque, right half transparent; the crop keeps the centre.
    let p = process(&images::png(512, 512), &Limits::default()).unwrap();
    let img = decoded(&p.files[0].1).to_rgb8();
    let px = img.get_pixel(500, 256).0;
    assert!(
        px.iter().all(|c| *c > 245),
        "transparent became white, got {px:?}"
    );
    let opaque = img.get_pixel(10, 256).0;
    assert!(opaque[2] < 160, "opaque kept its colour, got {opaque:?}");
}

#[test]
fn metadata_is_gone_from_what_is_stored() {
    let marker = "GPS 51.5007N 0.1246W serial XJ-42";
    let bytes = images::jpeg_with_metadata(400, 400, marker);
    assert!(bytes.windows(marker.len()).any(|w| w == marker.as_bytes()));
    let p = process(&bytes, &Limits::default()).unwrap();
    for (_, jpeg) in &p.files {
        assert!(!jpeg.windows(marker.len()).any(|w| w == marker.as_bytes()));
        let kinds = segments(jpeg);
        assert_eq!(kinds.first(), Some(&0xE0), "a JFIF header: {kinds:x?}");
        assert!(
            kinds.iter().all(|k| !matches!(k, 0xE1..=0xEF | 0xFE)),
            "no EXIF, ICC, other application segment or comment: {kinds:x?}"
        );
    }
}

#[test]
fn the_same_image_gives_the_same_name() {
    let bytes = images::jpeg(800, 600);
    let a = process(&bytes, &Limits::default()).unwrap();
    let b = process(&bytes, &Limits::default()).unwrap();
    assert_eq!(a.hash, b.hash);
    let c = process(&images::jpeg(801, 600), &Limits::default()).unwrap();
    assert_ne!(a.hash, c.hash);
}

#[test]
fn anything_but_the_four_formats_is_refused_as_a_type() {
    for bytes in [
        &b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"[..],
        b"<!doctype html><html><body>hi</body></html>",
        b"%PDF-1.7\n1 0 obj\n",
        b"just some text",
        b"BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00", // BMP: a real image, not taken
    ] {
        assert_eq!(
            process(bytes, &Limits::default()).unwrap_err(),
            AvatarError::UnsupportedType
        );
    }
    assert_eq!(
        process(b"", &Limits::default()).unwrap_err(),
        AvatarError::Empty
    );
}

#[test]
fn truncated_and_corrupt_images_are_refused() {
    let full = images::jpeg(400, 300);
    for bytes in [
        full[..full.len() / 3].to_vec(),
        full[..12].to_vec(),
        full[..full.len() - 2].to_vec(),
        {
            let gif = images::animated_gif(64, 64);
            gif[..gif.len() / 4].to_vec()
        },
        {
            let webp = images::webp(64, 64);
            webp[..webp.len() / 2].to_vec()
        },
        {
            let png = images::png(64, 64);
            png[..png.len() / 2].to_vec()
        },
        {
            let mut b = images::png(64, 64);
            let n = b.len();
            b[n / 2..].iter_mut().for_each(|x| *x ^= 0x5a);
            b
        },
    ] {
        match process(&bytes, &Limits::default()) {
            Err(AvatarError::Undecodable(_)) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn a_bomb_is_refused_from_its_header() {
    let bomb = images::png_bomb(50_000, 50_000);
    assert!(bomb.len() < 1024 * 1024, "{} bytes on the wire", bomb.len());
    let started = std::time::Instant::now();
    match process(&bomb, &Limits::default()) {
        Err(AvatarError::TooManyPixels { max: 4096, .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Refused from the header: nothing near 10 GB was allocated or inflated.
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn the_decoded_memory_limit_is_the_decoders_own() {
    // Within the dimension limit, beyond a 4 MiB memory limit (1200 × 1200 × 4 bytes).
    let limits = Limits {
        max_decoded_bytes: 4 * 1024 * 1024,
        ..Limits::default()
    };
    match process(&images::png_bomb(1200, 1200), &limits) {
        Err(AvatarError::Undecodable(m)) => assert!(m.contains("MiB"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(process(&images::png(1200, 1200), &Limits::default()).is_ok());
}

#[test]
fn size_limits_hold() {
    let limits = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    assert_eq!(
        process(&images::jpeg(400, 400), &limits).unwrap_err(),
        AvatarError::TooLarge { max: 1000 }
    );
    let small = Limits {
        max_dimension: 100,
        ..Limits::default()
    };
    assert!(matches!(
        process(&images::jpeg(101, 50), &small),
        Err(AvatarError::TooManyPixels { .. })
    ));
}
