"""An independent WebRTC receiver (aiortc, Debian's python3-aiortc) against moongate's WHEP.

It asks for a stream of the gateway's embedded demo host (Wolf-strict: every video RTP packet
from the host has timestamp 0), decodes the video track with aiortc's own H.264 decoder (PyAV),
and fails unless it decoded at least MIN_SHARE of the frames the stream's fps promises over the
window after the first frame. Exit 0 = pass; the figures go to stdout.

aiortc 1.4 decodes Opus only in 20 ms frames; Moonlight hosts send 5 ms frames, so the audio
track is received but not counted here (Chromium decodes it in the browser suite).
"""

import asyncio
import json
import os
import sys
import time
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription

FPS = 30
WINDOW_S = 5.0
MIN_SHARE = 0.95


async def run(base: str, credential: str) -> int:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    decoded = []  # arrival times of decoded video frames

    @pc.on("track")
    def on_track(track):
        if track.kind != "video":
            return

        async def pull():
            while True:
                try:
                    await track.recv()
                except Exception:  # the track ended
                    return
                decoded.append(time.monotonic())

        asyncio.ensure_future(pull())

    await pc.setLocalDescription(await pc.createOffer())
    query = f"host_id=0&app_id=1&width=640&height=360&fps={FPS}&bitrate=2000&client_unique_id=aiortc"
    request = urllib.request.Request(
        f"{base}/api/whep?{query}",
        data=pc.localDescription.sdp.encode(),
        method="POST",
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {credential}"},
    )
    loop = asyncio.get_running_loop()
    response = await loop.run_in_executor(None, lambda: urllib.request.urlopen(request, timeout=30))
    resource = response.headers["Location"]
    answer = response.read().decode()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    wait_s = float(os.environ.get("FIRST_FRAME_TIMEOUT_S", "20"))
    deadline = time.monotonic() + wait_s
    while not decoded and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if not decoded:
        print(f"no video frame decoded in {wait_s:g} s (ICE {pc.iceConnectionState})")
        return 1
    first = decoded[0]
    await asyncio.sleep(WINDOW_S)
    in_window = sum(1 for t in decoded if t <= first + WINDOW_S)
    expected = int(WINDOW_S * FPS)
    share = in_window / expected
    ice = pc.iceConnectionState
    await pc.close()
    # End the stream as a WHEP client does.
    end = urllib.request.Request(f"{base}{resource}", method="DELETE", headers={"Authorization": f"Bearer {credential}"})
    await loop.run_in_executor(None, lambda: urllib.request.urlopen(end, timeout=10).read())
    print(json.dumps({"decoded": in_window, "expected": expected, "share": round(share, 3), "ice": ice}))
    if share < MIN_SHARE:
        print(f"decoded {in_window} of {expected} frames: below {MIN_SHARE:.0%}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[1], sys.argv[2])))
