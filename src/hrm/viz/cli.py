"""`hrm viz`: argument parsing; the server is hrm.viz.server, the offline page hrm.viz.export.

hrm viz --model runs/sudoku4 --data data/sudoku4          # open the printed URL
hrm viz --run runs/sudoku4                                # training curves, refreshed while it trains
hrm viz --export trace.json --out trace.html              # one self-contained HTML file
"""

from __future__ import annotations

import argparse
import contextlib
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "viz",
        help="watch the model reason in a browser: puzzles, segments, L/H steps, training curves",
        description=(
            "Start a local web viewer: solve a puzzle (typed, generated, or from --data) with --model and "
            "step through its segments and inner L/H updates, see the residual norms, halting and the "
            "trajectory of the states, follow a training run's curves (--run), browse a dataset (--data). "
            "With --export, write one self-contained HTML page of a trace file instead."
        ),
    )
    p.add_argument(
        "--model",
        "-m",
        help="run dir, checkpoint dir, weights file or packaged model name "
        "(default: --run's latest checkpoint)",
    )
    p.add_argument("--run", metavar="RUN_DIR", help="a training run directory: its metrics.jsonl is plotted")
    p.add_argument("--data", metavar="DIR", help="a dataset directory to browse and pick puzzles from")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"), help="default cpu")
    p.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up on a solve or a generation after this long (default 60; a large model on a CPU "
        "may need more)",
    )
    p.add_argument("--export", metavar="TRACE_JSON", help="write a self-contained HTML page of this trace")
    p.add_argument("--out", metavar="HTML", help="with --export: the page to write (default: TRACE.html)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hrm.errors import ConfigError

    if args.export is not None:
        from hrm.viz.export import export_html

        others = [
            flag
            for flag, value in (("--model", args.model), ("--run", args.run), ("--data", args.data))
            if value
        ]
        if others:
            raise ConfigError(f"--export writes a page of a trace file; it takes no {', '.join(others)}")
        out = Path(args.out) if args.out else Path(args.export).with_suffix(".html")
        if out.resolve() == Path(args.export).resolve():
            raise ConfigError(f"--out {out} would overwrite the trace itself")
        written = export_html(args.export, out)
        print(f"wrote {written} ({written.stat().st_size / 1024:.0f} KB); open it in a browser")
        return 0
    if args.out is not None:
        raise ConfigError("--out goes with --export TRACE_JSON")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    if args.deadline is not None and not 1 <= args.deadline <= 3600:
        raise ConfigError(f"--deadline must be 1..3600 seconds, got {args.deadline:g}")

    from hrm.viz.limits import Limits
    from hrm.viz.server import LOCAL_HOSTS, bind, create_app, serve

    limits = Limits() if args.deadline is None else Limits(work_deadline_s=args.deadline)

    preloaded = None
    device = "cpu"
    if args.model is not None or args.device != "cpu":
        from hrm.distributed import pick_device

        device = str(pick_device(args.device))
    if args.model is not None:
        from hrm.checkpoint import load_model

        preloaded = load_model(args.model, device=device)  # fail now on a wrong path, not at the first solve
    public = args.host in ("0.0.0.0", "::")
    allowed = None if public else (*LOCAL_HOSTS, args.host.lower())
    app = create_app(
        model=args.model,
        run_dir=args.run,
        data_dir=args.data,
        device=device,
        preloaded_model=preloaded,
        allowed_hosts=allowed,
        limits=limits,
    )
    sock, url = bind(args.host, args.port)
    shown = []
    if args.model:
        shown.append(f"model {args.model}")
    if args.run:
        shown.append(f"run {args.run}")
    if args.data:
        shown.append(f"data {args.data}")
    print(f"hrm viz: serving {', '.join(shown) or 'no model, run or data'} at {url}", flush=True)
    if public:
        print(
            "hrm viz: listening on all interfaces; anyone who can reach this machine can use it", flush=True
        )
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        serve(app, sock)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m hrm.viz.cli ARGS` is `hrm viz ARGS`."""
    from hrm.errors import HRMError

    parser = argparse.ArgumentParser(prog="hrm")
    register(parser.add_subparsers())
    args = parser.parse_args(["viz", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.handler(args) or 0)
    except HRMError as exc:
        print(f"hrm: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
