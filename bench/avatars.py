#!/usr/bin/env python3
"""Set up the avatars scenario of the benchmark (bench/run.sh, BENCH_SCENARIOS=avatars), and
sample the server's memory while it runs.

    python3 bench/avatars.py setup --url http://127.0.0.1:PORT --key KEY --dir WORKDIR/avatars-bench \\
        --out WORKDIR/avatars.env
    python3 bench/avatars.py rss --pid PID --out FILE     # until SIGTERM; see below

setup:

1. Makes the fixtures in --dir (once; they are the same bytes every time):
   - photo.jpg: a 1200 x 850 (1.02 megapixel) JPEG, quality 90, a few hundred KB: gradients,
     soft-edged discs and a little noise, so it compresses like a photo, not like a flat colour.
     Made with Pillow, installed with pip when it is missing.
   - bomb.png: a PNG whose header declares 50000 x 50000 RGBA (10 GB of pixels once decoded),
     followed by 64 MiB of deflated zero rows, about 64 KB on the wire (as png_bomb in
     crates/orgbase-avatar/src/testing.rs, but compressed with zlib). Standard library only.
   - photo.body and bomb.body: each a multipart/form-data body with the file in the field
     `file`, framed by a fixed boundary (BOUNDARY below), which the wrk scripts send as they are.
2. Through the API with the platform key: creates one organization ("Bench Avatar Org"), uploads
   photo.body to POST /api/organizations/{id}/upload-avatar and requires a 200 with
   success true, data.avatarUrl (the 512-pixel file) and data.sizes [512, 128]; reads the
   organization back and requires the same avatarUrl; uploads bomb.body and requires a 422 whose
   problem names `image_too_large`; then GETs the avatar and requires a 200 with nosniff, an
   immutable Cache-Control, and a 512 x 512 image whose Content-Type, bytes and file extension
   agree (image/png and .png, or image/jpeg and .jpg: whichever the server stores).
3. Writes ORG, BOUNDARY, PHOTO_BODY, BOMB_BODY, AVATAR_PATH (the avatarUrl's path, for the GET),
   and the sizes (PHOTO_BYTES, BOMB_BYTES, AVATAR_BYTES) to --out, KEY=VALUE lines, for run.sh.

rss: reads VmRSS and Threads from /proc/PID/status every --interval seconds (default 0.1) until
it gets SIGTERM or SIGINT or the process is gone, then writes one line to --out:
    RSS rss_start_mb=... rss_peak_mb=... rss_end_mb=... rss_samples=... threads_peak=...
(MiB, of the samples taken; threads_peak: the most threads the server had, its blocking pool
included). run.sh starts one around each wrk run on an avatar endpoint, so the
peak is the run's own, not the process's since it started (VmHWM).
"""
import argparse
import http.client
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import urllib.parse
import zlib

BOUNDARY = "----OrgbaseBenchBoundary7MA4YWxkTrZu0gW"
PHOTO_SIZE = (1200, 850)
BOMB_SIZE = (50000, 50000)
BOMB_ZERO_BYTES = 64 * 1024 * 1024


def die(msg):
    print(f"avatars.py: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# Fixtures

def pillow():
    try:
        import PIL  # noqa: F401
    except ImportError:
        print("avatars.py: installing Pillow (pip install pillow)", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "pillow"])
    from PIL import Image, ImageDraw, ImageFilter

    return Image, ImageDraw, ImageFilter


def photo_jpeg():
    """A photo-like 1200 x 850 JPEG, deterministic (seeded)."""
    Image, ImageDraw, ImageFilter = pillow()
    w, h = PHOTO_SIZE
    rng = random.Random(8)
    r = Image.linear_gradient("L").resize((w, h))
    g = Image.radial_gradient("L").resize((w, h))
    b = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((w, h))
    img = Image.merge("RGB", (r, g, b))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y, s = rng.randrange(w), rng.randrange(h), rng.randrange(20, 260)
        draw.ellipse((x - s, y - s, x + s, y + s), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    img = img.filter(ImageFilter.GaussianBlur(6))
    noise = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    img = Image.blend(img, noise, 0.10)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png():
    """A PNG declaring 50000 x 50000 RGBA, with 64 MiB of zero rows deflated to about 64 KB."""
    w, h = BOMB_SIZE
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    row = w * 4 + 1
    rows = max(1, min(h, BOMB_ZERO_BYTES // row))
    comp = zlib.compressobj(9)
    idat = bytearray()
    zeros = bytes(row)
    for _ in range(rows):
        idat += comp.compress(zeros)
    idat += comp.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", bytes(idat)) + png_chunk(b"IEND", b"")


def multipart(name, content_type, data):
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def write_if_changed(path, data):
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    with open(path, "wb") as f:
        f.write(data)


def make_fixtures(d):
    os.makedirs(d, exist_ok=True)
    photo = photo_jpeg()
    bomb = bomb_png()
    files = {
        "photo.jpg": photo,
        "bomb.png": bomb,
        "photo.body": multipart("photo.jpg", "image/jpeg", photo),
        "bomb.body": multipart("bomb.png", "image/png", bomb),
    }
    for name, data in files.items():
        write_if_changed(os.path.join(d, name), data)
    return {k: os.path.join(d, k) for k in files}, len(photo), len(bomb)


# ---------------------------------------------------------------------------------------------
# API

class Api:
    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.key = key

    def call(self, method, path, body=None, content_type=None, auth=True):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.key}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()


def image_kind_and_dimensions(data):
    """("image/png" | "image/jpeg", (width, height)) from the bytes, or (None, None)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return "image/png", struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 4 <= len(data) and data[i] == 0xFF:
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            # Start of frame (baseline, extended, progressive, lossless, …): height, then width.
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return "image/jpeg", (w, h)
            i += 2 + length
        return "image/jpeg", None
    return None, None


def setup(args):
    paths, photo_bytes, bomb_bytes = make_fixtures(args.dir)
    api = Api(args.url, args.key)
    mp = f"multipart/form-data; boundary={BOUNDARY}"

    status, _, data = api.call("POST", "/api/organizations", json.dumps({"name": "Bench Avatar Org", "countryCode": "US"}),
                               "application/json")
    if status not in (200, 201):
        die(f"creating the organization: HTTP {status}: {data[:500]!r}")
    org = json.loads(data)["id"]
    upload = f"/api/organizations/{org}/upload-avatar"

    with open(paths["photo.body"], "rb") as f:
        photo_body = f.read()
    t = time.monotonic()
    status, _, data = api.call("POST", upload, photo_body, mp)
    took = time.monotonic() - t
    if status != 200:
        die(f"uploading the photo: HTTP {status}: {data[:500]!r}")
    answer = json.loads(data)
    avatar_url = (answer.get("data") or {}).get("avatarUrl")
    sizes = [s.get("size") for s in (answer.get("data") or {}).get("sizes", [])]
    if answer.get("success") is not True or not avatar_url or sizes != [512, 128]:
        die(f"the photo's upload answer is not as expected: {answer}")
    status, _, data = api.call("GET", f"/api/organizations/{org}")
    if status != 200 or json.loads(data).get("avatarUrl") != avatar_url:
        die(f"the organization's avatarUrl is not the uploaded one: HTTP {status}: {data[:500]!r}")

    with open(paths["bomb.body"], "rb") as f:
        bomb_body = f.read()
    status, _, data = api.call("POST", upload, bomb_body, mp)
    if status != 422 or b"image_too_large" not in data:
        die(f"the bomb was not refused with 422 image_too_large: HTTP {status}: {data[:500]!r}")

    path = urllib.parse.urlsplit(avatar_url).path
    status, headers, data = api.call("GET", path, auth=False)
    if status != 200:
        die(f"GET {path}: HTTP {status}: {data[:300]!r}")
    problems = []
    kind, dims = image_kind_and_dimensions(data)
    ext = {"image/png": ".png", "image/jpeg": ".jpg"}.get(kind)
    if kind is None or headers.get("content-type") != kind or not path.endswith(ext):
        problems.append(f"Content-Type {headers.get('content-type')!r}, bytes {kind or 'neither PNG nor JPEG'}, path {path}")
    if headers.get("x-content-type-options") != "nosniff":
        problems.append(f"X-Content-Type-Options {headers.get('x-content-type-options')!r}")
    if "immutable" not in headers.get("cache-control", ""):
        problems.append(f"Cache-Control {headers.get('cache-control')!r}")
    if dims != (512, 512):
        problems.append(f"dimensions {dims}")
    if problems:
        die(f"GET {path}: " + "; ".join(problems))

    print(f"avatars: organization {org}; photo {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG {photo_bytes:,} bytes "
          f"(body {len(photo_body):,}), uploaded in {took * 1000:.0f} ms -> {path} ({len(data):,} bytes, 512x512 {kind}); "
          f"bomb {BOMB_SIZE[0]}x{BOMB_SIZE[1]} PNG {bomb_bytes:,} bytes refused with 422")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(f"ORG={org}\nBOUNDARY={BOUNDARY}\nPHOTO_BODY={paths['photo.body']}\nBOMB_BODY={paths['bomb.body']}\n"
                f"AVATAR_PATH={path}\nPHOTO_BYTES={photo_bytes}\nBOMB_BYTES={bomb_bytes}\nAVATAR_BYTES={len(data)}\n")
    return 0


# ---------------------------------------------------------------------------------------------
# RSS sampler

def rss_kib(pid):
    """(VmRSS in KiB, Threads), or None when the process is gone."""
    rss = threads = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None if rss is None else (rss, threads or 0)


def rss(args):
    samples = []
    threads = 0
    stop = False

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop:
        v = rss_kib(args.pid)
        if v is None:
            break
        samples.append(v[0])
        threads = max(threads, v[1])
        time.sleep(args.interval)
    v = rss_kib(args.pid)
    if v is not None:
        samples.append(v[0])
        threads = max(threads, v[1])
    with open(args.out, "w", encoding="utf-8") as f:
        if samples:
            f.write(f"RSS rss_start_mb={samples[0] / 1024:.1f} rss_peak_mb={max(samples) / 1024:.1f} "
                    f"rss_end_mb={samples[-1] / 1024:.1f} rss_samples={len(samples)} threads_peak={threads}\n")
        else:
            f.write("RSS rss_samples=0\n")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--url", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--dir", required=True, help="where the fixtures go")
    s.add_argument("--out", required=True)
    r = sub.add_parser("rss")
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args()
    return setup(args) if args.cmd == "setup" else rss(args)


if __name__ == "__main__":
    sys.exit(main())
