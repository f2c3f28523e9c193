#!/bin/sh
# Regenerates the HEVC and AV1 clips the demo host replays (`open_video` with Hevc/Av1).
# Needs ffmpeg (Debian 12: 5.1 with libx265 and libaom) and python3; CI never runs this.
#
# Output format ("DHAU" v1, all integers big-endian), read by demo-host/src/media/clip.rs:
#   header (14 bytes): magic[4] version[1] codec[1] width[2] height[2] fps[2] count[2]
#   then `count` records: flags u8 (bit 0 = keyframe) | length u32 | access unit bytes
# HEVC access units are Annex B (4-byte start codes, AUDs dropped, VPS/SPS/PPS in front of
# every IRAP); AV1 access units are temporal units of low-overhead OBUs (with size fields),
# temporal delimiter first.
set -eu
cd "$(dirname "$0")"
W=640 H=360 FPS=60 N=60
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

SRC="testsrc2=size=${W}x${H}:rate=${FPS}"

ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$SRC" -frames:v $N -pix_fmt yuv420p \
  -c:v libx265 -preset fast -tune zerolatency -b:v 600k \
  -x265-params "keyint=$N:min-keyint=$N:scenecut=0:bframes=0:aud=1:repeat-headers=1:info=0:log-level=error" \
  -f hevc "$TMP/clip.hevc"

ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$SRC" -frames:v $N -pix_fmt yuv420p \
  -c:v libaom-av1 -usage realtime -cpu-used 8 -lag-in-frames 0 -g $N -b:v 600k \
  -f obu "$TMP/clip.obu"

python3 - "$TMP" "$W" "$H" "$FPS" <<'PY'
import struct, sys
tmp, w, h, fps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def write(path, codec, aus):
    with open(path, "wb") as f:
        f.write(b"DHAU" + struct.pack(">BBHHHH", 1, codec, w, h, fps, len(aus)))
        for key, au in aus:
            f.write(struct.pack(">BI", 1 if key else 0, len(au)) + au)

def nals(data):
    # Annex B: split on 00 00 01 (a leading 00 of a 4-byte code belongs to no NAL).
    starts, i = [], 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        while e > s and data[e - 1] == 0:
            e -= 1
        yield data[s:e]

aus, cur, key = [], b"", False
for nal in nals(open(f"{tmp}/clip.hevc", "rb").read()):
    t = (nal[0] >> 1) & 0x3F
    if t == 35:  # access unit delimiter: a new access unit starts
        if cur:
            aus.append((key, cur))
        cur, key = b"", False
        continue
    key = key or 16 <= t <= 21
    cur += b"\x00\x00\x00\x01" + nal
if cur:
    aus.append((key, cur))
write("hevc.dhau", 1, aus)

def leb128(d, i):
    v = 0
    for k in range(8):
        b = d[i + k]
        v |= (b & 0x7F) << (7 * k)
        if b & 0x80 == 0:
            return v, i + k + 1
    raise ValueError("leb128")

d = open(f"{tmp}/clip.obu", "rb").read()
aus, cur, key, i = [], b"", False, 0
while i < len(d):
    hdr = d[i]
    t = (hdr >> 3) & 0xF
    assert hdr & 0x02, "OBU without size field"
    j = i + 1 + (1 if hdr & 0x04 else 0)
    size, j = leb128(d, j)
    obu, payload = d[i:j + size], d[j:j + size]
    i = j + size
    if t == 2 and cur:  # temporal delimiter: a new temporal unit starts
        aus.append((key, cur))
        cur, key = b"", False
    if t in (3, 6) and payload and not payload[0] & 0x80 and (payload[0] >> 5) & 3 == 0:
        key = True  # show_existing_frame = 0, frame_type = KEY_FRAME
    cur += obu
if cur:
    aus.append((key, cur))
write("av1.dhau", 2, aus)
PY
ls -l hevc.dhau av1.dhau
