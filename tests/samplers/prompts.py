"""Real prompts for the sampler tests: a test-only source of the tiny MODEL and conditionings,
an output node, and the graphs (KSampler, SamplerCustomAdvanced) validated and run by the engine."""

from __future__ import annotations

from typing import Any

from nodes.api import Input, Node, Output, Result


class TinySource(Node):
    """Test-only source of the tiny MODEL and its two CONDITIONINGs."""

    name = "SamplersTestTinySource"
    inputs = ()
    outputs = (Output("MODEL"), Output("CONDITIONING"), Output("CONDITIONING"))
    values: tuple = ()

    def run(self) -> tuple:
        return self.values


class LatentMean(Node):
    """Test-only output node: the mean of a LATENT as UI output."""

    name = "SamplersTestLatentMean"
    output_node = True
    inputs = (Input("samples", "LATENT"),)
    outputs = ()

    def run(self, samples: dict) -> Result:
        return Result(ui={"mean": [float(samples["samples"].mean())]})


def ksampler_prompt(sampler_name: str, *, steps: int = 3, seed: int = 1, scheduler: str = "karras") -> dict:
    """source -> EmptyLatentImage -> KSampler(sampler_name) -> LatentMean, in API format."""
    return {
        "1": {"class_type": "SamplersTestTinySource", "inputs": {}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 5.0,
                "sampler_name": sampler_name,
                "scheduler": scheduler,
                "positive": ["1", 1],
                "negative": ["1", 2],
                "latent_image": ["2", 0],
                "denoise": 1.0,
            },
        },
        "4": {"class_type": "SamplersTestLatentMean", "inputs": {"samples": ["3", 0]}},
    }


def custom_prompt(sampler_node: dict, *, steps: int = 3, seed: int = 1) -> dict:
    """source -> (sampler_node as "5") -> SamplerCustomAdvanced -> LatentMean, in API format."""
    return {
        "1": {"class_type": "SamplersTestTinySource", "inputs": {}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": sampler_node,
        "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
        "7": {
            "class_type": "CFGGuider",
            "inputs": {"model": ["1", 0], "positive": ["1", 1], "negative": ["1", 2], "cfg": 5.0},
        },
        "8": {
            "class_type": "BasicScheduler",
            "inputs": {"model": ["1", 0], "scheduler": "karras", "steps": steps, "denoise": 1.0},
        },
        "3": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["6", 0],
                "guider": ["7", 0],
                "sampler": ["5", 0],
                "sigmas": ["8", 0],
                "latent_image": ["2", 0],
            },
        },
        "4": {"class_type": "SamplersTestLatentMean", "inputs": {"samples": ["3", 0]}},
    }


def run_prompt(executor: Any, prompt: dict) -> Any:
    """Validate (as POST /prompt does) and execute ``prompt``; the engine's RunResult."""
    from engine import validate_prompt

    result = validate_prompt(prompt, executor.registry, ["4"])
    assert result.ok, result.node_errors
    run = executor.execute_sync("p", result.prompt, ["4"], order=result.order)
    assert run.status_str == "success", run.error
    return run


def first_latent(result: Any) -> dict:
    """A sampling node's first LATENT, whether it returned a tuple or a Result with UI reports."""
    return (result.outputs if isinstance(result, Result) else result)[0]
