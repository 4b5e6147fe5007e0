"""Weft entry point.

    python main.py [flags]            serve the editor and the API (default 127.0.0.1:8188)
    python main.py run FILE.json      execute an API-format prompt without a browser

Every flag of ComfyUI's launcher is accepted (see ``server/config.py`` and docs/compatibility.md).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class _RunStop(Exception):
    """Ends `run` early with an exit status once the reason has been printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def serve(argv: Sequence[str]) -> int:
    from server.config import parse_args
    from server.launch import LaunchError, prepare_environment, report_flags, setup_logging
    from server.launch import serve as serve_app

    config = parse_args(argv)
    setup_logging(config.verbose, to_stdout=config.log_stdout)
    prepare_environment(config)  # before anything imports torch
    report_flags(config)
    try:
        return serve_app(config)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run_config(argv: Sequence[str]) -> tuple[Any, Path]:
    """Parse `run`'s command line and prepare logging and the environment before torch loads."""
    import argparse

    from server.config import build_parser, config_from_args
    from server.launch import prepare_environment, report_flags, setup_logging

    parser = argparse.ArgumentParser(
        prog="weft run",
        parents=[build_parser()],
        add_help=False,
        description="Execute an API-format prompt (as saved by 'Export (API)') and print where its outputs went. "
        "Progress goes to stderr: a line per node, and a step bar for samplers when stderr is a terminal.",
    )
    parser.add_argument("file", type=Path, help="API-format prompt JSON ({id: {class_type, inputs}})")
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    # quiet by default: the progress lines and the result are the output; --verbose brings logs back
    setup_logging("WARNING" if args.verbose == "INFO" else args.verbose, to_stdout=config.log_stdout)
    prepare_environment(config)
    report_flags(config)
    return config, args.file


def _read_prompt_file(file: Path) -> Any:
    """The prompt in `file`, unwrapped from a /prompt request body; a UI workflow is refused."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"error: {file}: no such file", file=sys.stderr)
        raise _RunStop(2) from None
    except json.JSONDecodeError as exc:
        print(f"error: {file} is not valid JSON: {exc}", file=sys.stderr)
        raise _RunStop(2) from None
    if isinstance(data, dict) and "prompt" in data and isinstance(data["prompt"], dict):
        data = data["prompt"]
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        print(f"error: {file} is a UI workflow; export it in API format (Export (API)) and run that", file=sys.stderr)
        raise _RunStop(2)
    return data


def _headless_server(config: Any) -> tuple[Any, Any, Any]:
    """Paths, models, registry and plugins set up as the server would, without its sockets."""
    from nodes.launch_options import configure as configure_launch_options
    from nodes.registry import builtin_registry
    from server.app import configure_models, configure_paths, launch_options, load_custom_nodes
    from server.prompt_server import PromptServer

    paths = configure_paths(config)
    configure_models(config)
    configure_launch_options(launch_options(config))
    registry = builtin_registry()
    # a server object without sockets, so packs that reach for PromptServer.instance load and
    # run as they do under the server (their messages have no client to go to)
    headless = PromptServer(config, registry)
    load_custom_nodes(headless, registry, config)
    return paths, registry, headless


def _validated(data: Any, registry: Any, config: Any) -> Any:
    """The validation result, with every problem printed; stops the run when nothing can run."""
    from engine import normalise_prompt, validate_prompt

    try:
        prompt = normalise_prompt(data)
    except ValueError as exc:
        print(f"error: invalid prompt: {exc}", file=sys.stderr)
        raise _RunStop(2) from None
    result = validate_prompt(prompt, registry, memory_budget=config.node_memory_budget)
    if not result.ok:
        print(f"error: {result.error['message']}: {result.error['details']}", file=sys.stderr)
        for node_id, entry in result.node_errors.items():
            for error in entry["errors"]:
                print(
                    f"  node {node_id} ({entry['class_type']}): {error['message']}: {error['details']}", file=sys.stderr
                )
        raise _RunStop(1)
    for node_id, entry in result.node_errors.items():  # ComfyUI runs the valid outputs and names the rest
        for error in entry["errors"]:
            print(
                f"warning: node {node_id} ({entry['class_type']}): {error['message']}: {error['details']} "
                f"(output(s) {', '.join(entry['dependent_outputs'])} skipped)",
                file=sys.stderr,
            )
    return result


def _execute(headless: Any, result: Any) -> Any:
    """Run the validated prompt with progress on stderr; stops the run on failure or interruption."""
    from server.console import RunProgress, execution_error_lines

    progress = RunProgress(
        sys.stderr, {node_id: str(node.get("class_type")) for node_id, node in result.prompt.items()}
    )
    # no client watches a headless run, so no sampler previews whatever --preview-method says
    run = headless.executor.execute_sync(
        str(uuid.uuid4()),
        result.prompt,
        result.outputs,
        order=result.order,
        emit=progress,
        extra_data={"preview_method": "none"},
    )
    progress.close()
    if run.status_str != "success":
        if run.interrupted:
            print("interrupted", file=sys.stderr)
        else:
            for line in execution_error_lines(run.error or {}):
                print(line, file=sys.stderr)
        raise _RunStop(1)
    return run


def _print_outputs(run: Any, paths: Any) -> None:
    for node_id, ui in run.outputs.items():
        for image in ui.get("images", []):
            folder = paths.directory(image.get("type", "output"))
            print(f"{node_id}: {folder / image.get('subfolder', '') / image['filename']}")
        for text in ui.get("text", []):
            print(f"{node_id}: {text}")


def run_file(argv: Sequence[str]) -> int:
    config, file = _run_config(argv)
    try:
        data = _read_prompt_file(file)
        paths, registry, headless = _headless_server(config)
        result = _validated(data, registry, config)
        run = _execute(headless, result)
    except _RunStop as stop:
        return stop.code
    _print_outputs(run, paths)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        return run_file(argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
