//! For tests: a real S3-compatible server (moto's, from PyPI: `pip install 'moto[server]'`) with
//! a bucket, and plain HTTP reads of what it holds.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::S3Settings;

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// `python3 -m moto.server` on `127.0.0.1` and a free port, with one empty bucket. Killed on
/// drop.
pub struct S3Server {
    server: orgbase_testkit::PythonServer,
    bucket: String,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// # Panics
    /// When the server does not answer within 20 s, with what it printed and how to install it.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for the S3 server");
        let spec = orgbase_testkit::PythonServerSpec {
            name: "the test S3 server (moto)",
            module: "moto.server",
            package: "moto[server]",
            timeout: START_TIMEOUT,
        };
        let server = orgbase_testkit::start_python_server(&spec, dir.path(), |port| {
            ["-m", "moto.server", "-H", "127.0.0.1", "-p"]
                .iter()
                .map(|a| a.to_string())
                .chain([port.to_string()])
                .collect()
        });
        let server = Self {
            server,
            bucket: "avatars-test".into(),
            _dir: dir,
        };
        let (status, _, _) = server.request("PUT", &format!("/{}", server.bucket));
        assert_eq!(status, 200, "creating the test bucket");
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// Settings for [`crate::S3Storage`], with `public_url` as the base of avatar URLs.
    pub fn settings(&self, public_url: &str) -> S3Settings {
        S3Settings {
            bucket: self.bucket.clone(),
            endpoint: Some(self.endpoint()),
            region: "us-east-1".into(),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            public_url: public_url.into(),
        }
    }

    /// A minimal HTTP/1.1 request (moto does not check signatures): status, headers, body.
    fn request(&self, method: &str, path: &str) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.server.port))
            .expect("connecting to the S3 server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.server.port
        )
        .expect("writing to the S3 server");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .expect("reading from the S3 server");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut body = raw[split + 4..].to_vec();
        if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            body = dechunk(&body);
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("an HTTP status");
        (status, head, body)
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}

/// Images made here, so tests need no binary fixtures.
pub mod images {
    use image::codecs::gif::GifEncoder;
    use image::codecs::jpeg::JpegEncoder;
    use image::codecs::png::PngEncoder;
    use image::codecs::webp::WebPEncoder;
    use image::{Delay, Frame, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};

    /// A colourful gradient: compresses like a photo, not like a flat colour.
    pub fn rgb(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            Rgb([
                (x * 255 / width.max(1)) as u8,
                (y * 255 / height.max(1)) as u8,
                ((x ^ y) & 0xff) as u8,
            ])
        })
    }

    pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&rgb(width, height))
            .expect("encoding a JPEG");
        out
    }

    pub fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbaImage::from_fn(width, height, |x, y| {
            Rgba([
                (x % 256) as u8,
                (y % 256) as u8,
                128,
                if x < width / 2 { 255 } else { 0 },
            ])
        });
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgba8)
            .expect("encoding a PNG");
        out
    }

    pub fn webp(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        WebPEncoder::new_lossless(&mut out)
            .write_image(
                rgb(width, height).as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
            .expect("encoding a WebP");
        out
    }

    /// Two frames: red, then blue. Only the first may be used.
    pub fn animated_gif(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = GifEncoder::new(&mut out);
            for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
                let frame = Frame::from_parts(
                    RgbaImage::from_pixel(width, height, Rgba(colour)),
                    0,
                    0,
                    Delay::from_numer_denom_ms(100, 1),
                );
                enc.encode_frame(frame).expect("encoding a GIF frame");
            }
        }
        out
    }

    /// A JPEG carrying an EXIF segment (with `marker` in it, as a GPS tag or a camera serial
    /// would be) and a comment (with `marker` too).
    pub fn jpeg_with_metadata(width: u32, height: u32, marker: &str) -> Vec<u8> {
        let plain = jpeg(width, height);
        let mut exif = b"Exif\0\0".to_vec();
        // A little-endian TIFF header with no IFD entries, then the marker as trailing data.
        exif.extend_from_slice(b"II*\0\x08\0\0\0\0\0\0\0\0\0");
        exif.extend_from_slice(marker.as_bytes());
        let mut out = plain[..2].to_vec(); // SOI
        segment(&mut out, 0xE1, &exif);
        segment(&mut out, 0xFE, marker.as_bytes());
        out.extend_from_slice(&plain[2..]);
        out
    }

    fn segment(out: &mut Vec<u8>, marker: u8, data: &[u8]) {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(data);
    }

    /// A PNG whose header declares `width` × `height` (RGBA, 8 bits), followed by up to 64 MiB
    /// of deflated zero rows: a decompression bomb a few hundred kilobytes on the wire.
    pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        let row = width as usize * 4 + 1;
        let rows = (64 * 1024 * 1024 / row).clamp(1, height as usize);
        chunk(&mut out, b"IDAT", &deflate_zeros(rows * row));
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A zlib stream that inflates to `len` zero bytes, built by hand: fixed-Huffman blocks of
    /// one literal zero followed by maximal back-references (length 258, distance 1).
    fn deflate_zeros(len: usize) -> Vec<u8> {
        let mut bits = BitWriter::default();
        // zlib header: deflate, 32K window, no dictionary, check bits.
        let mut out = vec![0x78, 0x01];
        // One final fixed-Huffman block.
        bits.put(1, 1); // BFINAL
        bits.put(0b01, 2); // BTYPE = fixed
                           // Literal 0: code 00110000 (8 bits), sent most significant bit first.
        bits.put_rev(0b0011_0000, 8);
        let mut left = len.saturating_sub(1);
        while left >= 258 {
            // Length 258: symbol 285, code 11000101 (8 bits), no extra bits.
            bits.put_rev(0b1100_0101, 8);
            // Distance 1: code 0 (5 bits), no extra bits.
            bits.put_rev(0, 5);
            left -= 258;
        }
        for _ in 0..left {
            bits.put_rev(0b0011_0000, 8);
        }
        // End of block: symbol 256, code 0000000 (7 bits).
        bits.put_rev(0, 7);
        out.extend_from_slice(&bits.finish());
        // Adler-32 of `len` zeros: a = 1, b = len (mod 65521).
        let a = 1u32;
        let b = (len % 65521) as u32;
        out.extend_from_slice(&((b << 16) | a).to_be_bytes());
        out
    }

    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        acc: u32,
        n: u32,
    }

    impl BitWriter {
        /// `count` bits of `value`, least significant first (header fields).
        fn put(&mut self, value: u32, count: u32) {
            for i in 0..count {
                self.bit((value >> i) & 1);
            }
        }
        /// `count` bits of `value`, most significant first (Huffman codes).
        fn put_rev(&mut self, value: u32, count: u32) {
            for i in (0..count).rev() {
                self.bit((value >> i) & 1);
            }
        }
        fn bit(&mut self, b: u32) {
            self.acc |= b << self.n;
            self.n += 1;
            if self.n == 8 {
                self.bytes.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
        fn finish(mut self) -> Vec<u8> {
            if self.n > 0 {
                self.bytes.push(self.acc as u8);
            }
            self.bytes
        }
    }
}
