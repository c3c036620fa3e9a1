"""Phone sessions per worker: N concurrent Twilio calls at real-time pacing against the embedded
emulator (mu-law 8 kHz in and out, resampled to and from the session's 24 kHz), beside N browser
sessions of the same length over the page's WebSocket protocol (PCM16 at 24 kHz, playback
receipts every 20 ms: :mod:`benchmarks.page_client`). Each caller says the same
question once and stays on the line in silence until it hangs up.

The far ends run in a child process, so the server's CPU time (``time.process_time``: the
sessions, the transports, the embedded emulator) is what is compared. It also reports the
transport's own latency from each call's ``metrics.json`` (``transport`` section). The two kinds
are measured in turn, ``--rounds`` pairs of them with the order swapped each time, and the ratio
is the median of the pairs'.

    .venv/bin/python -m benchmarks.phone_load [--calls 10] [--seconds 15] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from voicepipe import eventloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
AUTH_TOKEN = "benchmark-token-0000000000000000"
GOAL = 1.3


async def _browser_far_ends(base: str, calls: int, seconds: float) -> None:
    from benchmarks.page_client import Step, call

    step, stop = Step(calls), asyncio.Event()
    url = base.replace("http://", "ws://", 1) + "/demo/ws"
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await call([url], step, stop, ask_once=True, arrive_every_s=0)
    if step.failed:
        raise SystemExit(f"browser callers failed: {step.failed[:3]}")


async def _far_ends(base: str, calls: int, seconds: float) -> None:
    import aiohttp
    from phone_helpers import TwilioPhone, ulaw_speech

    from voicepipe.serve.twilio import signature

    form = {"CallSid": "CA0", "From": "+1", "To": "+2"}
    speech = ulaw_speech()
    async with aiohttp.ClientSession() as http:

        async def call() -> None:
            url = f"{base}/demo/twilio/voice"
            async with http.post(url, data=form, headers={"X-Twilio-Signature": signature(AUTH_TOKEN, url, form)}) as r:
                twiml = await r.text()
            stream = twiml.split('url="')[1].split('"')[0]
            token = twiml.split('value="')[1].split('"')[0]
            phone = TwilioPhone(http, stream, token)
            await phone.connect()
            phone.say(speech)
            await asyncio.sleep(seconds)
            await phone.hang_up()

        await asyncio.gather(*(call() for _ in range(calls)))


def _host(log_dir: str, kind: str):
    from phone_helpers import phone_served

    from voicepipe.logsetup import get_logger
    from voicepipe.serve.host import SessionHost

    return SessionHost([phone_served(kind, speed=1)], log=get_logger(), log_dir=log_dir)


async def _served_cpu(kind: str, calls: int, seconds: float, log_dir: str) -> float:
    """Server CPU seconds for ``calls`` callers of ``kind`` (``twilio`` or ``web``) from a child process."""
    from phone_helpers import serving

    host = _host(log_dir, kind)
    async with serving(host) as (base, _):
        cpu = time.process_time()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.phone_load", "--far-ends", base, "--kind", kind, "--calls", str(calls),
            "--seconds", str(seconds), cwd=str(ROOT),
        )
        if await child.wait() != 0:
            raise SystemExit(f"the {kind} far ends failed")
        while host.sessions:
            await asyncio.sleep(0.05)
        return time.process_time() - cpu


def _latency(log_dir: str) -> dict:
    sections = [json.loads(p.read_text())["transport"] for p in Path(log_dir).glob("*/metrics.json")]
    out = {}
    for key in ("socket_in_to_append_ms", "delta_to_socket_out_ms"):
        p50 = [s[key]["p50"] for s in sections if s[key].get("p50") is not None]
        p99 = [s[key]["p99"] for s in sections if s[key].get("p99") is not None]
        out[key] = (round(statistics.median(p50), 1) if p50 else None, round(max(p99), 1) if p99 else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.phone_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="pairs measured, the two kinds in turn (first one, then the other first): the "
                             "ratio is their median, so that a host whose speed drifts weighs on both alike")
    parser.add_argument("--far-ends")
    parser.add_argument("--kind", default="twilio", choices=("twilio", "web"))
    args = parser.parse_args()
    if args.far_ends:
        far_ends = _far_ends if args.kind == "twilio" else _browser_far_ends
        eventloop.run(far_ends(args.far_ends, args.calls, args.seconds))
        return
    for name in ("calls", "seconds", "rounds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} {getattr(args, name)}: give a number above 0")
    from voicepipe.logsetup import configure_logging, shutdown_logging

    os.environ["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    configure_logging(None, console_level="ERROR", session_files=True)
    per = args.calls * args.seconds
    pairs: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as warm_dir:  # imports, the emulator's voice, first calls
            eventloop.run(_served_cpu("web", 1, 3.0, warm_dir))
            eventloop.run(_served_cpu("twilio", 1, 3.0, warm_dir))
        with tempfile.TemporaryDirectory() as phones_dir:
            for number in range(args.rounds):
                pair = {}
                for kind in ("web", "twilio") if number % 2 == 0 else ("twilio", "web"):
                    # the phone calls' metrics are kept for their transport latency
                    runs = contextlib.nullcontext(phones_dir) if kind == "twilio" else tempfile.TemporaryDirectory()
                    with runs as log_dir:
                        pair[kind] = eventloop.run(_served_cpu(kind, args.calls, args.seconds, log_dir)) / per * 1000
                pairs.append(pair)
                print(f"round {number + 1}: {pair['twilio']:.1f} ms CPU per call-second vs {pair['web']:.1f}, "
                      f"ratio {pair['twilio'] / pair['web']:.2f}", flush=True)
            latency = _latency(phones_dir)
    finally:
        shutdown_logging()
    ratios = [pair["twilio"] / pair["web"] for pair in pairs]
    ratio = statistics.median(ratios)
    phones, baseline = (statistics.median(pair[kind] for pair in pairs) for kind in ("twilio", "web"))
    inbound, outbound = latency["socket_in_to_append_ms"], latency["delta_to_socket_out_ms"]
    print(f"| phone load | {args.calls} Twilio calls x {args.seconds:g} s at real time (mu-law 8 kHz <-> 24 kHz) "
          f"vs {args.calls} browser callers (the page's protocol, PCM16 24 kHz, receipts), {args.rounds} pairs | "
          f"{phones:.1f} ms CPU per call-second vs {baseline:.1f} (medians); transport latency socket in -> append "
          f"p50 {inbound[0]} ms, p99 {inbound[1]} ms; delta -> socket out p50 {outbound[0]} ms, p99 {outbound[1]} ms | "
          f"{ratio:.2f} (median of {', '.join(f'{r:.2f}' for r in ratios)}) | ratio <= {GOAL} | "
          f"{'yes' if ratio <= GOAL else 'NO'} |")


if __name__ == "__main__":
    main()
