"""ComfyUI's launch lines: every flag of its launcher starts Weft, and those with a meaning here act.

The flag table below is ComfyUI 0.8.0's ``comfy/cli_args.py``, transcribed (names, and a valid
value for the flags that take one). Each flag starts the real app in-process on a free port
(the start ``tests/support/server.py`` uses) through the same parse / environment / app steps
as ``main.py``, and the server must answer ``/system_stats``. What needs a real process (the
printed URL, the browser, the port already taken, logging to stdout) is in tests/test_cli.py.
"""

from __future__ import annotations

import gzip
import io
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nodes.paths as paths_module
from nodes import launch_options
from nodes.api import Int, Node, Output
from nodes.registry import NodeRegistry, builtin_registry
from server.app import create_app, model_settings
from server.config import ServerConfig, build_parser, parse_args
from server.embedded import start_in_thread
from server.launch import prepare_environment
from tests.support.server import LiveServer
from tests.support.ws import EventRecorder

#: ComfyUI 0.8.0's launcher flags: (argv, has no effect in Weft). ``{tmp}`` is a scratch folder.
COMFYUI_FLAGS: list[tuple[list[str], bool]] = [
    (["--listen", "127.0.0.1"], False),
    (["--listen"], False),
    (["--port", "8190"], False),
    (["--tls-keyfile", "{tmp}/key.pem"], False),
    (["--tls-certfile", "{tmp}/cert.pem"], False),
    (["--enable-cors-header"], False),
    (["--enable-cors-header", "http://example.com"], False),
    (["--max-upload-size", "12.5"], False),
    (["--base-directory", "{tmp}"], False),
    (["--extra-model-paths-config", "{tmp}/extra.yaml", "{tmp}/extra2.yaml"], False),
    (["--output-directory", "{tmp}/out"], False),
    (["--temp-directory", "{tmp}/tmpdir"], False),
    (["--input-directory", "{tmp}/in"], False),
    (["--auto-launch"], False),
    (["--disable-auto-launch"], False),
    (["--cuda-device", "0"], False),
    (["--default-device", "1"], False),
    (["--cuda-malloc"], False),
    (["--disable-cuda-malloc"], False),
    (["--force-fp32"], False),
    (["--force-fp16"], False),
    (["--fp32-unet"], False),
    (["--fp64-unet"], True),
    (["--bf16-unet"], False),
    (["--fp16-unet"], False),
    (["--fp8_e4m3fn-unet"], False),
    (["--fp8_e5m2-unet"], False),
    (["--fp8_e8m0fnu-unet"], True),
    (["--fp16-vae"], False),
    (["--fp32-vae"], False),
    (["--bf16-vae"], False),
    (["--cpu-vae"], False),
    (["--fp8_e4m3fn-text-enc"], False),
    (["--fp8_e5m2-text-enc"], False),
    (["--fp16-text-enc"], False),
    (["--fp32-text-enc"], False),
    (["--bf16-text-enc"], False),
    (["--force-channels-last"], True),
    (["--directml"], True),
    (["--directml", "1"], True),
    (["--oneapi-device-selector", "level_zero:0"], True),
    (["--disable-ipex-optimize"], True),
    (["--supports-fp8-compute"], True),
    (["--preview-method", "none"], False),
    (["--preview-method", "auto"], False),
    (["--preview-method", "latent2rgb"], False),
    (["--preview-method", "taesd"], False),
    (["--preview-size", "256"], False),
    (["--cache-classic"], False),
    (["--cache-lru", "5"], False),
    (["--cache-none"], False),
    (["--cache-ram"], False),
    (["--cache-ram", "2"], False),
    (["--use-split-cross-attention"], True),
    (["--use-quad-cross-attention"], True),
    (["--use-pytorch-cross-attention"], False),
    (["--use-sage-attention"], True),
    (["--use-flash-attention"], True),
    (["--disable-xformers"], False),
    (["--force-upcast-attention"], True),
    (["--dont-upcast-attention"], True),
    (["--enable-manager"], True),
    (["--disable-manager-ui"], True),
    (["--enable-manager-legacy-ui"], True),
    (["--gpu-only"], False),
    (["--highvram"], False),
    (["--normalvram"], False),
    (["--lowvram"], False),
    (["--novram"], False),
    (["--cpu"], False),
    (["--reserve-vram", "1.5"], False),
    (["--async-offload"], True),
    (["--async-offload", "4"], True),
    (["--disable-async-offload"], True),
    (["--force-non-blocking"], True),
    (["--default-hashing-function", "md5"], False),
    (["--disable-smart-memory"], False),
    (["--deterministic"], False),
    (["--fast"], True),
    (["--fast", "fp16_accumulation", "autotune"], True),
    (["--disable-pinned-memory"], True),
    (["--mmap-torch-files"], True),
    (["--disable-mmap"], True),
    (["--dont-print-server"], False),
    (["--quick-test-for-ci"], False),
    (["--windows-standalone-build"], False),
    (["--disable-metadata"], False),
    (["--disable-all-custom-nodes"], False),
    (["--whitelist-custom-nodes", "example_pack", "other_pack"], False),
    (["--disable-api-nodes"], False),
    (["--multi-user"], True),
    (["--verbose"], False),
    (["--verbose", "WARNING"], False),
    (["--log-stdout"], False),
    (["--front-end-version", "Comfy-Org/ComfyUI_frontend@1.30.0"], True),
    (["--front-end-root", "{tmp}/frontend"], True),
    (["--user-directory", "{tmp}/userdir"], False),
    (["--enable-compress-response-body"], False),
    (["--comfy-api-base", "https://api.example.com"], True),
    (["--database-url", "sqlite:///:memory:"], True),
]

WEFT_ONLY_FLAGS = {
    "--disable-custom-nodes",
    "--custom-nodes-directory",
    "--base-path",
    "--max-node-memory",
    "--max-image-pixels",
    "--max-string-length",
    "--max-json-depth",
    "--memory-only-queue",
    "--on-restart-running",
    "--max-queue-items",
    "--max-queue-size",
    "--max-history-items",
    "--max-history-size",
    "--worker-mode",
    "--interrupt-grace",
    "--max-prompt-seconds",
    "--batch-prompts",
    "--backend",
    "--ray-address",
    "--ray-workers",
    "--ray-cpus-per-worker",
    "--ray-gpus-per-worker",
    "--auth-token",
    "--auth-token-file",
    "--insecure-no-auth",
    "--allowed-hosts",
    "--trusted-proxy",
    "--body-timeout",
    "--idle-timeout",
    "--compile-unet",
}


def _id(entry: tuple[list[str], bool]) -> str:
    return " ".join(entry[0]).replace("{tmp}/", "")


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return builtin_registry()


@pytest.fixture(autouse=True)
def restore_process_state() -> Iterator[None]:
    """Servers started here set the process's model manager and torch's determinism (their paths
    and launch options leave with them): put them back so later tests see the defaults."""
    from nodes.diffusion.model_manager import configure as configure_manager

    previous_options = launch_options.get_options()
    yield
    assert launch_options.get_options() is previous_options  # a stopped server took its options along
    configure_manager(**model_settings(ServerConfig()))
    import sys

    if "torch" in sys.modules:
        import torch

        torch.use_deterministic_algorithms(False)


def scratch(tmp_path: Path) -> Path:
    for name in ("frontend", "userdir", "in", "out", "tmpdir"):
        (tmp_path / name).mkdir(exist_ok=True)
    for name in ("extra.yaml", "extra2.yaml"):
        (tmp_path / name).write_text("comfyui:\n  base_path: " + str(tmp_path / "elsewhere") + "\n  loras: loras\n")
    return tmp_path


def launch(
    argv: list[str], tmp_path: Path, registry: NodeRegistry | None = None, *, load_plugins: bool = False
) -> tuple[LiveServer, ServerConfig, dict[str, str]]:
    """``main.py``'s steps (parse, environment, app) with the server on a free loopback port."""
    full = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--base-directory" not in full:
        full += ["--base-directory", str(tmp_path)]
    if "--worker-mode" not in full:  # nodes in this process: the tests' registries are built here
        full += ["--worker-mode", "thread"]
    config = parse_args(full)
    environ: dict[str, str] = {}
    prepare_environment(config, environ)
    app = create_app(config, registry if registry is not None else builtin_registry(), load_plugins=load_plugins)
    return LiveServer(start_in_thread(app), tmp_path), config, environ


def test_the_table_is_every_flag_of_the_parser() -> None:
    """Weft's parser has exactly ComfyUI's flags plus its own, none missing, none extra."""
    parser_flags = {opt for action in build_parser()._actions for opt in action.option_strings} - {"-h", "--help"}
    table_flags = {entry[0][0] for entry in COMFYUI_FLAGS}
    assert parser_flags - WEFT_ONLY_FLAGS == table_flags


@pytest.mark.parametrize("entry", COMFYUI_FLAGS, ids=_id)
def test_each_comfyui_flag_starts_the_server(
    entry: tuple[list[str], bool], tmp_path: Path, registry: NodeRegistry
) -> None:
    argv, no_effect = entry
    live, config, _ = launch(argv, scratch(tmp_path), registry)
    try:
        # bare --listen serves every interface: the app generated an access token
        token = {"Authorization": f"Bearer {config.auth_token}"} if config.auth_token else {}
        status, stats = live.get("/system_stats", headers=token)
        assert status == 200 and "system" in stats and stats["devices"], stats
    finally:
        live.stop()
    # the flags with no meaning here are named in the start-up line, and only those
    assert (argv[0] in config.ignored_flags) == no_effect, config.ignored_flags
    assert config.comfy_args[build_parser()._option_string_actions[argv[0]].dest] is not None


def test_one_line_names_every_flag_without_effect(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from server.launch import report_flags

    config = parse_args(["--fast", "--lowvram", "--use-sage-attention", "--multi-user", "--disable-xformers"])
    with caplog.at_level("WARNING"):
        report_flags(config)
    lines = [r.getMessage() for r in caplog.records if "no effect in Weft" in r.getMessage()]
    assert len(lines) == 1
    assert "--use-sage-attention --fast --multi-user" in lines[0]
    assert "--lowvram" not in lines[0] and "--disable-xformers" not in lines[0]
    caplog.clear()
    report_flags(parse_args(["--lowvram"]))
    assert not caplog.records  # nothing to say when every flag applies


def test_quick_test_for_ci_loads_everything_and_exits(tmp_path: Path) -> None:
    from server.launch import serve

    assert serve(parse_args(["--quick-test-for-ci", "--base-directory", str(tmp_path), "--port", "1"])) == 0


def test_invalid_values_are_refused_as_comfyui_refuses_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for argv, says in (
        (["--user-directory", str(tmp_path / "missing")], "does not exist"),
        (["--preview-method", "fancy"], "invalid choice"),
        (["--lowvram", "--highvram"], "not allowed with"),
        (["--cache-lru", "3", "--cache-none"], "not allowed with"),
    ):
        with pytest.raises(SystemExit) as stopped:
            parse_args(argv)
        assert stopped.value.code == 2
        assert says in capsys.readouterr().err


# -- memory modes and precisions reach the model manager -----------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"vram_mode": "normal", "force_cpu": False, "offload_after_run": False, "vram_reserve": None}),
        (["--normalvram"], {"vram_mode": "normal"}),
        (["--highvram"], {"vram_mode": "high"}),
        (["--gpu-only"], {"vram_mode": "gpu_only"}),
        (["--lowvram"], {"vram_mode": "low"}),
        (["--novram"], {"vram_mode": "none"}),
        (["--cpu"], {"force_cpu": True}),
        (["--reserve-vram", "2"], {"vram_reserve": 2 << 30}),
        (["--disable-smart-memory"], {"offload_after_run": True}),
        (["--deterministic"], {"deterministic": True}),
        (["--cpu-vae"], {"vae_on_cpu": True}),
        (["--force-fp32"], {"unet_dtype": "fp32", "text_encoder_dtype": "fp32", "vae_dtype": "fp32"}),
        (["--force-fp16"], {"unet_dtype": "fp16", "text_encoder_dtype": "auto", "vae_dtype": "auto"}),
        (["--bf16-unet"], {"unet_dtype": "bf16"}),
        (["--force-fp32", "--fp16-unet"], {"unet_dtype": "fp16", "vae_dtype": "fp32"}),
        (["--fp8_e4m3fn-unet"], {"unet_storage": "fp8_e4m3fn"}),
        (["--fp8_e5m2-text-enc"], {"text_encoder_storage": "fp8_e5m2"}),
        (["--bf16-text-enc"], {"text_encoder_dtype": "bf16"}),
        (["--fp16-vae"], {"vae_dtype": "fp16"}),
        (["--bf16-vae"], {"vae_dtype": "bf16"}),
        (["--compile-unet"], {"compile_unet": "inductor"}),
    ],
)
def test_memory_and_precision_flags_reach_the_model_manager(
    argv: list[str], expected: dict[str, Any], tmp_path: Path, registry: NodeRegistry
) -> None:
    from nodes.diffusion.model_manager import get_manager

    live, _, _ = launch(argv, tmp_path, registry)
    live.stop()
    settings = get_manager().settings
    assert {name: getattr(settings, name) for name in expected} == expected


def test_memory_modes_set_the_budget_on_an_accelerator() -> None:
    """With a pretend 10 GiB GPU (moves recorded, not made): what each mode keeps on the device."""
    import torch

    from nodes.diffusion.model_manager import GiB, ManagerSettings, ModelManager

    class PretendGPU(ModelManager):
        def compute_device(self) -> torch.device:
            return torch.device("cuda", 0)

        def _device_total(self, device: torch.device) -> int:
            return 10 * GiB

        def _cast(self, handle: Any, device: torch.device) -> None:
            pass

        def _cast_to_cpu(self, handle: Any) -> None:
            handle.location = "cpu"

    def budget(**settings: Any) -> int:
        return PretendGPU(ManagerSettings(ram_budget=64 * GiB, **settings)).vram_budget()

    assert budget() == 9 * GiB  # normal: all but 1 GiB
    assert budget(vram_reserve=3 * GiB) == 7 * GiB
    assert budget(vram_mode="high") == budget(vram_mode="gpu_only") == 10 * GiB
    assert budget(vram_mode="high", vram_reserve=2 * GiB) == 8 * GiB
    assert budget(vram_mode="low") == budget(vram_mode="none") == 0

    for mode, after_run in (("low", "device"), ("none", "cpu"), ("normal", "device")):
        manager = PretendGPU(ManagerSettings(ram_budget=64 * GiB, vram_mode=mode))
        a, b = (manager.handle(n, "unet", lambda: torch.nn.Linear(4, 4), name=n) for n in "ab")
        a.on_device()
        b.on_device()
        # low and none keep only the module in use on the device; normal keeps both (they fit)
        assert (a.location, b.location) == (("cpu", "device") if mode != "normal" else ("device", "device")), mode
        manager.after_run()
        assert b.location == after_run, mode  # --novram: everything leaves the GPU after each run
    manager = PretendGPU(ManagerSettings(ram_budget=64 * GiB, offload_after_run=True))  # --disable-smart-memory
    handle = manager.handle("c", "unet", lambda: torch.nn.Linear(4, 4), name="c")
    handle.on_device()
    manager.after_run()
    assert handle.location == "cpu"


def test_precision_flags_choose_dtypes_and_devices() -> None:
    import torch

    from nodes.diffusion.model_manager import ManagerSettings, ModelManager

    class PretendGPU(ModelManager):
        def compute_device(self) -> torch.device:
            return torch.device("cuda", 0)

    settings = {**model_settings(parse_args(["--force-fp32", "--fp16-unet", "--fp8_e4m3fn-text-enc", "--cpu-vae"]))}
    settings.pop("force_cpu")
    manager = PretendGPU(ManagerSettings(**settings))
    assert manager.dtype_for("unet") == manager.dtype_for("controlnet") == torch.float16
    assert (
        manager.dtype_for("clip") == torch.float32
        and manager.dtype_for("vae", device=torch.device("cpu")) == torch.float32
    )
    clip = manager.handle("clip", "clip", lambda: None)
    unet = manager.handle("unet", "unet", lambda: None)
    vae = manager.handle("vae", "vae", lambda: None)
    assert manager.storage_for(clip) == "fp8_e4m3fn" and manager.storage_for(unet) is None
    assert vae.device.type == "cpu" and unet.device.type == "cuda"  # --cpu-vae


def test_device_flags_set_the_environment_before_torch_loads() -> None:
    env: dict[str, str] = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    prepare_environment(parse_args(["--cuda-device", "2", "--cuda-malloc", "--deterministic"]), env)
    assert env["CUDA_VISIBLE_DEVICES"] == env["HIP_VISIBLE_DEVICES"] == "2"
    assert env["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True,backend:cudaMallocAsync"
    assert env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    env = {}
    prepare_environment(parse_args(["--default-device", "1"]), env)
    assert env["CUDA_VISIBLE_DEVICES"].startswith("1,0,2,3,")
    env = {}
    prepare_environment(parse_args([]), env)
    assert env == {}


def test_cuda_device_hides_the_other_gpus_in_a_real_start(tmp_path: Path) -> None:
    """``--cuda-device`` reaches torch: the variable is set before torch is imported."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = (
        "import os, sys\n"
        "from server.config import parse_args\n"
        "from server.launch import prepare_environment\n"
        "prepare_environment(parse_args(['--cuda-device', '3']))\n"
        "assert 'torch' not in sys.modules\n"
        "import torch\n"
        "print(os.environ['CUDA_VISIBLE_DEVICES'], torch.cuda.device_count() <= 1)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "True"]


# -- what nodes see: metadata, previews, the user directory ---------------------------------------


def _png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


SAVE_PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "pixel.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "meta"}},
}


@pytest.mark.parametrize("disabled", [False, True], ids=["default", "disable-metadata"])
def test_disable_metadata_leaves_the_png_without_text_chunks(
    disabled: bool, tmp_path: Path, registry: NodeRegistry
) -> None:
    from PIL import Image

    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "pixel.png").write_bytes(_png_bytes())
    live, _, _ = launch(["--disable-metadata"] if disabled else [], tmp_path, registry)
    try:
        prompt_id = live.queue_prompt(SAVE_PROMPT, extra_data={"extra_pnginfo": {"workflow": {"nodes": []}}})
        entry = live.wait_history(prompt_id)
    finally:
        live.stop()
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = entry["outputs"]["2"]["images"][0]
    with Image.open(tmp_path / "output" / saved["subfolder"] / saved["filename"]) as image:
        text = dict(getattr(image, "text", {}))
    if disabled:
        assert text == {}
    else:
        assert json.loads(text["prompt"])["2"]["class_type"] == "SaveImage" and "workflow" in text


class StepsWithPreviews(Node):
    """Three steps through the samplers' own progress/preview callbacks, without a model."""

    category = "testing"
    inputs = (Int("steps", 3, min=1, max=10),)
    outputs = (Output("INT"),)

    def run(self, steps: int) -> int:
        import torch

        from nodes.diffusion.sampling import node_callbacks

        on_step, wants = node_callbacks({"family": "sd1"})
        assert on_step is not None
        for step in range(1, steps + 1):
            on_step(step, steps, torch.zeros(1, 4, 64, 48) if wants(step) else None)
        return steps


PREVIEW_PROMPT = {
    "1": {"class_type": "StepsWithPreviews", "inputs": {"steps": 3}},
    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
}


@pytest.mark.parametrize(
    ("argv", "extra", "expected"),
    [
        ([], {}, 0),  # ComfyUI's default: no preview frames
        ([], {"preview_method": "auto"}, 3),  # the client asks (as the canvas does)
        ([], {"preview_method": "latent2rgb"}, 3),
        ([], {"preview_method": "taesd"}, 3),  # served by latent2rgb
        ([], {"preview_method": "default"}, 0),  # "default": the launcher's --preview-method
        (["--preview-method", "none"], {}, 0),
        (["--preview-method", "auto"], {}, 3),
        (["--preview-method", "auto"], {"preview_method": "none"}, 0),  # the client's choice wins
        (["--preview-method", "latent2rgb"], {"preview_method": "default"}, 3),
        (["--preview-method", "auto"], {"preview_method": "bogus"}, 3),  # unknown: the launcher's
    ],
)
async def test_preview_method_from_the_launcher_and_the_client(
    argv: list[str], extra: dict[str, Any], expected: int, tmp_path: Path
) -> None:
    registry = builtin_registry()
    registry.register_all([StepsWithPreviews], pack="tests")
    live, _, _ = launch(argv, tmp_path, registry)
    try:
        client = uuid.uuid4().hex
        async with EventRecorder(live.ws_url, client) as ws:
            prompt_id = live.queue_prompt(PREVIEW_PROMPT, client_id=client, extra_data=extra)
            await ws.wait_done(prompt_id)
            progress = [d["value"] for e, d in ws.for_prompt(prompt_id) if e == "progress"]
        assert progress == [1, 2, 3]  # progress always goes
        assert len(ws.previews) == expected
        # the history keeps what the client sent, not the resolved method
        assert live.wait_history(prompt_id)["prompt"][3].get("preview_method") == extra.get("preview_method")
    finally:
        live.stop()


async def test_preview_size_bounds_the_preview(tmp_path: Path) -> None:
    from PIL import Image

    registry = builtin_registry()
    registry.register_all([StepsWithPreviews], pack="tests")
    live, _, _ = launch(["--preview-method", "latent2rgb", "--preview-size", "16"], tmp_path, registry)
    try:
        client = uuid.uuid4().hex
        async with EventRecorder(live.ws_url, client) as ws:
            await ws.wait_done(live.queue_prompt(PREVIEW_PROMPT, client_id=client))
        with Image.open(io.BytesIO(ws.previews[0][2])) as frame:
            assert frame.size == (12, 16)  # a 48x64 (w x h) latent, aspect kept
    finally:
        live.stop()


def test_user_directory(tmp_path: Path, registry: NodeRegistry) -> None:
    users = tmp_path / "shared-user"
    users.mkdir()
    live, _, _ = launch(["--user-directory", str(users)], tmp_path, registry)
    try:
        assert live.runtime.paths.user == users.resolve()
        assert paths_module.get_paths().user == users.resolve()  # the running server's, for node code
        assert not (tmp_path / "user").exists()  # the base directory's user/ is not used
    finally:
        live.stop()


def test_comfy_cli_args_answer_with_the_launch_line(tmp_path: Path, registry: NodeRegistry) -> None:
    """Packs reading ``comfy.cli_args.args`` see how Weft was launched."""
    from nodes.plugins.loader import install_compat

    install_compat()
    from comfy.cli_args import LatentPreviewMethod, PerformanceFeature, args

    live, _, _ = launch(
        ["--lowvram", "--disable-metadata", "--preview-method", "auto", "--fast", "autotune"], tmp_path, registry
    )
    try:
        assert args.lowvram is True and args.highvram is False and args.disable_metadata is True
        assert args.preview_method is LatentPreviewMethod.Auto and args.fast == {PerformanceFeature.AutoTune}
        assert args.base_directory == str(tmp_path) and args.no_such_flag is None
    finally:
        live.stop()
    # a stopped server puts back what was there before (ComfyUI's defaults here)
    assert args.lowvram is False and args.preview_method is LatentPreviewMethod.NoPreviews


def test_whitelisted_pack_loads_with_all_custom_nodes_disabled(tmp_path: Path) -> None:
    live, _, _ = launch(
        ["--disable-all-custom-nodes", "--whitelist-custom-nodes", "example_pack"], tmp_path, load_plugins=True
    )
    try:
        status, report = live.get("/api/plugins")
    finally:
        live.stop()
    assert status == 200
    statuses = {pack["name"]: pack["status"] for pack in report["packs"]}
    assert statuses.get("example_pack") == "loaded", statuses


def test_compressed_responses(tmp_path: Path, registry: NodeRegistry) -> None:
    for flag, compressed in (([], False), (["--enable-compress-response-body"], True)):
        live, _, _ = launch(flag, tmp_path, registry)
        try:
            request = urllib.request.Request(live.url + "/object_info", headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=30) as response:
                body, encoding = response.read(), response.headers.get("Content-Encoding")
        finally:
            live.stop()
        assert (encoding == "gzip") == compressed
        info = json.loads(gzip.decompress(body) if compressed else body)
        assert "KSampler" in info
