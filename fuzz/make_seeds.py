#!/usr/bin/env python3
"""Writes the avatar_pipeline fuzzer's seed corpus: small images of every format the pipeline
takes, and a few it must refuse, each a few KB (fuzz/corpus/avatar_pipeline/seed-*).

    python3 fuzz/make_seeds.py [OUT_DIR]

The pictures follow crates/orgbase-avatar/src/testing.rs (`images::{jpeg, png, webp,
animated_gif, png_bomb}`): a gradient that compresses like a photo, an RGBA PNG half transparent,
a two-frame GIF; plus variants the decoders treat differently (progressive and greyscale JPEG,
EXIF orientation and comments, palette, 16-bit and interlaced PNG, lossy and animated WebP, odd
sizes) and a decompression bomb with a small payload. Pillow is installed with pip if missing.
Deterministic: the same files every run.
"""
import io
import os
import random
import struct
import subprocess
import sys
import zlib

try:
    from PIL import Image
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "pillow"])
    from PIL import Image

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "avatar_pipeline")


def gradient(w, h):
    """testing::images::rgb: red across, green down, x ^ y in blue."""
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 255 // max(w, 1)), (y * 255 // max(h, 1)), (x ^ y) & 0xFF) for y in range(h) for x in range(w)])
    return img


def rgba(w, h):
    """testing::images::png: half opaque, half transparent."""
    img = Image.new("RGBA", (w, h))
    img.putdata([(x % 256, y % 256, 128, 255 if x < w // 2 else 0) for y in range(h) for x in range(w)])
    return img


def save(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# --- PNG by hand, for what Pillow does not write (interlacing, bombs, odd headers) ----------

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(w, h, colour_type, depth, raw, interlace=0, extra=b""):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def png_adam7_rgb(w, h):
    """An interlaced (Adam7) RGB PNG of the gradient, filter 0 on every row."""
    px = gradient(w, h).load()
    raw = bytearray()
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        xs = list(range(x0, w, dx))
        if not xs:
            continue
        for y in range(y0, h, dy):
            raw.append(0)
            for x in xs:
                raw.extend(px[x, y])
    return png_raw(w, h, 2, 8, bytes(raw), interlace=1)


def png_bomb(w, h, rows):
    """testing::images::png_bomb, with `rows` rows of deflated zeros instead of 64 MiB."""
    row = w * 4 + 1
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (rows * row), 9))
            + chunk(b"IEND", b""))


def exif_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value  # Orientation
    exif[0x010F] = "FuzzCam"  # Make
    return exif.tobytes()


def main():
    os.makedirs(OUT, exist_ok=True)
    random.seed(8)
    g = gradient(64, 48)
    seeds = {
        # JPEG
        "jpeg-baseline.jpg": save(g, "JPEG", quality=90),
        "jpeg-progressive.jpg": save(gradient(40, 40), "JPEG", quality=75, progressive=True),
        "jpeg-grey.jpg": save(g.convert("L"), "JPEG", quality=80),
        "jpeg-444.jpg": save(gradient(24, 40), "JPEG", quality=95, subsampling=0),
        "jpeg-cmyk.jpg": save(gradient(16, 16).convert("CMYK"), "JPEG", quality=80),
        "jpeg-exif-rotated.jpg": save(g, "JPEG", quality=60, exif=exif_orientation(6), comment=b"GPS 48.85,2.35"),
        "jpeg-restart.jpg": save(gradient(48, 48), "JPEG", quality=70, restart_marker_blocks=1),
        # PNG
        "png-rgba.png": save(rgba(48, 32), "PNG"),
        "png-rgb.png": save(gradient(33, 17), "PNG"),
        "png-palette-trns.png": save(rgba(20, 20).convert("P", palette=Image.ADAPTIVE, colors=16), "PNG", transparency=0),
        "png-grey16.png": png_raw(16, 16, 0, 16, b"".join(b"\0" + b"".join(struct.pack(">H", (x * 4096 + y * 97) & 0xFFFF) for x in range(16)) for y in range(16))),
        "png-grey-alpha.png": save(rgba(24, 24).convert("LA"), "PNG"),
        "png-1bit.png": save(g.convert("1"), "PNG"),
        "png-interlaced.png": png_adam7_rgb(19, 23),
        "png-1x1.png": save(Image.new("RGBA", (1, 1), (10, 20, 30, 40)), "PNG"),
        "png-1x300.png": save(gradient(1, 300), "PNG"),
        "png-text.png": png_raw(8, 8, 2, 8, b"".join(b"\0" + bytes(24) for _ in range(8)),
                                extra=chunk(b"tEXt", b"Comment\0secret") + chunk(b"gAMA", struct.pack(">I", 45455))),
        "png-bomb.png": png_bomb(50000, 50000, 8),
        "png-bomb-in-limits.png": png_bomb(1024, 1024, 4),
        "png-truncated.png": save(gradient(32, 32), "PNG")[:-40],
        # WebP
        "webp-lossless.webp": save(gradient(32, 32), "WEBP", lossless=True),
        "webp-lossy.webp": save(gradient(40, 30), "WEBP", quality=50),
        "webp-alpha.webp": save(rgba(24, 24), "WEBP", quality=60),
        "webp-animated.webp": save(Image.new("RGB", (16, 16), (255, 0, 0)), "WEBP", save_all=True,
                                   append_images=[Image.new("RGB", (16, 16), (0, 0, 255))], duration=100, lossless=True),
        # GIF
        "gif-animated.gif": save(Image.new("RGB", (32, 32), (255, 0, 0)), "GIF", save_all=True,
                                 append_images=[Image.new("RGB", (32, 32), (0, 0, 255))], duration=100, loop=0),
        "gif-static.gif": save(g.convert("P", palette=Image.ADAPTIVE, colors=64), "GIF"),
        "gif-interlaced.gif": save(gradient(20, 20).convert("P", palette=Image.ADAPTIVE, colors=32), "GIF", interlace=True),
        # Refused by type
        "svg.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>',
        "pdf.pdf": b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    }
    total = 0
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, "seed-" + name), "wb") as f:
            f.write(data)
        total += len(data)
        print(f"{len(data):>7}  seed-{name}")
    print(f"{total:>7}  total, {len(seeds)} seeds in {OUT}")


if __name__ == "__main__":
    main()
