"""`python -m camsvc.streaming.standin`: run the MediaMTX stand-in until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import sys

import trio

from camsvc.streaming.standin._server import StandIn

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m camsvc.streaming.standin", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--api-port", type=int, default=9997, help="v3 API port (0: any)")
    p.add_argument("--rtsp-port", type=int, default=8554, help="RTSP port (0: any)")
    p.add_argument("--recordings", default=None, help="recordPath root of the path defaults")
    p.add_argument("--paths", default="{}", help="initial path confs as JSON {name: {...}}")
    p.add_argument("--ffmpeg", default="ffmpeg", help="ffmpeg used by the recorder")
    p.add_argument("--api-user", default="", help="require Basic auth with this user")
    p.add_argument("--api-pass", default="", help="password for --api-user")
    return p


async def _run(args: argparse.Namespace) -> None:
    auth = (args.api_user, args.api_pass) if args.api_user else None
    standin = StandIn(
        api_port=args.api_port,
        rtsp_port=args.rtsp_port,
        host=args.host,
        recordings=args.recordings,
        paths=json.loads(args.paths),
        ffmpeg=args.ffmpeg,
        auth=auth,
    )
    async with trio.open_nursery() as nursery:
        ports = await nursery.start(standin.run)
        print(json.dumps({"api": ports.api, "rtsp": ports.rtsp}), flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until a signal."""
    trio.run(_run, _parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
