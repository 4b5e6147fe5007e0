"""Weft entry point.

    python main.py [flags]            serve the editor and the API (default 127.0.0.1:8188)
    python main.py run FILE.json      execute an API-format prompt without a browser
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def serve(argv: Sequence[str]) -> int:
    from server.config import parse_args

    config = parse_args(argv)
    _setup_logging(config.verbose)
    from aiohttp import web

    from server.app import create_app

    app = create_app(config)
    shown = config.listen[0]
    host = f"[{shown}]" if ":" in shown else shown
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    url = f"http://{host}:{config.port}{config.base_path}/"
    web.run_app(
        app,
        host=config.listen,
        port=config.port,
        print=lambda _msg: print(f"Weft is running at {url}  (Ctrl+C to stop)", flush=True),
        access_log=None,
    )
    return 0


def run_file(argv: Sequence[str]) -> int:
    import argparse

    from server.config import build_parser

    parser = argparse.ArgumentParser(
        prog="weft run", parents=[build_parser()], add_help=False,
        description="Execute an API-format prompt (as saved by 'Export (API)') and print where its outputs went.",
    )
    parser.add_argument("file", type=Path, help="API-format prompt JSON ({id: {class_type, inputs}})")
    args = parser.parse_args(argv)
    _setup_logging("WARNING" if args.verbose == "INFO" else args.verbose)

    from engine import normalise_prompt, validate_prompt
    from nodes.registry import builtin_registry
    from server.app import configure_models, configure_paths, load_custom_nodes
    from server.config import parse_args
    from server.prompt_server import PromptServer

    config = parse_args([a for a in argv if a != str(args.file)])
    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"error: {args.file} is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if isinstance(data, dict) and "prompt" in data and isinstance(data["prompt"], dict):
        data = data["prompt"]
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        print(f"error: {args.file} is a UI workflow; export it in API format (Export (API)) and run that", file=sys.stderr)
        return 2
    paths = configure_paths(config)
    configure_models(config)
    registry = builtin_registry()
    # a server object without sockets, so packs that reach for PromptServer.instance load and
    # run as they do under the server (their messages have no client to go to)
    headless = PromptServer(config, registry)
    load_custom_nodes(headless, registry, config)
    try:
        prompt = normalise_prompt(data)
    except ValueError as exc:
        print(f"error: invalid prompt: {exc}", file=sys.stderr)
        return 2
    result = validate_prompt(prompt, registry)
    if not result.ok:
        print(f"error: {result.error['message']}: {result.error['details']}", file=sys.stderr)
        for node_id, entry in result.node_errors.items():
            for error in entry["errors"]:
                print(f"  node {node_id} ({entry['class_type']}): {error['message']}: {error['details']}", file=sys.stderr)
        return 1

    def show_progress(event: str, payload: dict) -> None:
        if event == "executing" and payload.get("node"):
            print(f"running node {payload['node']}", file=sys.stderr)

    run = headless.executor.execute_sync(str(uuid.uuid4()), result.prompt, result.outputs, order=result.order, emit=show_progress)
    if run.status_str != "success":
        error = run.error or {}
        if run.interrupted:
            print("interrupted", file=sys.stderr)
        else:
            print(f"error in node {error.get('node_id')} ({error.get('node_type')}): {error.get('exception_message')}", file=sys.stderr)
            print("".join(error.get("traceback", [])), file=sys.stderr)
        return 1
    for node_id, ui in run.outputs.items():
        for image in ui.get("images", []):
            folder = paths.directory(image.get("type", "output"))
            print(f"{node_id}: {folder / image.get('subfolder', '') / image['filename']}")
        for text in ui.get("text", []):
            print(f"{node_id}: {text}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        return run_file(argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
