"""`python -m radgrpo.rewards.server`: serve the given scorers (see launchers/reward_server.sh)."""

from __future__ import annotations

import argparse
import os

from radgrpo.rewards.client import TOKEN_ENV

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reward_server", description=__doc__)
    parser.add_argument("--scorer", action="append", required=True, help="scorer name or module:function; repeatable")
    parser.add_argument("--host", default="127.0.0.1", help="bind address; any non-loopback address needs a token")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV), help=f"bearer token (default: ${TOKEN_ENV})")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds before a request gets HTTP 504")
    parser.add_argument("--radgraph", help="local RadGraph model directory (radcliq_components, radgraph_graph)")
    parser.add_argument("--radgraph-type", default="radgraph", help="radgraph or radgraph-xl")
    parser.add_argument("--chexbert", help="local chexbert.pth (radcliq_components)")
    parser.add_argument("--bertscore", help="local distilroberta-base directory (radcliq_components)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.host not in LOOPBACK and not args.token:
        raise SystemExit(f"--host {args.host} exposes the server beyond this machine: set --token or ${TOKEN_ENV}")
    import uvicorn

    from radgrpo.rewards.server.app import create_app
    from radgrpo.rewards.server.scorers import load_scorer

    options = vars(args)
    scorers = dict(load_scorer(spec, options) for spec in args.scorer)
    app = create_app(scorers, args.token, args.max_batch, args.max_wait_ms, args.request_timeout)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
