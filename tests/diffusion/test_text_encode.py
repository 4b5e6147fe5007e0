"""Prompt weighting syntax, the CLIP tokenizer, text encoding for each family, chunking of long
prompts, CLIPSetLastLayer and the conditioning nodes."""

from __future__ import annotations

import pytest
import torch

from nodes.diffusion.clip_text import BOS, EOS, clip_vocab, make_tokenizer, parse_weights, tokenize_weighted
from nodes.diffusion.conditioning import (
    CLIPSetLastLayer,
    CLIPTextEncode,
    CLIPTextEncodeSDXL,
    ConditioningCombine,
    ConditioningInputError,
    ConditioningSetArea,
    ConditioningSetMask,
    ConditioningZeroOut,
)
from nodes.diffusion.loaders import CheckpointLoaderSimple

W = 1.1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat", [("a cat", 1.0)]),
        ("a (cat)", [("a ", 1.0), ("cat", W)]),
        ("a ((cat))", [("a ", 1.0), ("cat", W * W)]),
        ("(red:1.5) cat", [("red", 1.5), (" cat", 1.0)]),
        ("(red: 0.5 )", [("red", 0.5)]),
        ("[cat]", [("[cat]", 1.0)]),  # ComfyUI: literal text, not /1.1
        ("((a:2) b)", [("a", 2.0), (" b", W)]),  # ComfyUI: an explicit weight replaces
        ("(a (b):1.2)", [("a ", 1.2), ("b", 1.2 * W)]),
        (r"\(not weighted\)", [("(not weighted)", 1.0)]),
        (r"a \[b\] \\ c", [(r"a \[b\] \\ c", 1.0)]),  # ComfyUI escapes only \( and \)
        ("(time: 12:30)", [("time: 12", 30.0)]),
        ("(a:x)", [("a:x", W)]),
        ("unmatched) ] here", [("unmatched) ] here", 1.0)]),
        ("(unclosed", [("(unclosed", 1.0)]),  # ComfyUI: literal
        ("", []),
    ],
)
def test_weighting_syntax(text, expected):
    got = parse_weights(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_tokenizer_has_the_real_clip_vocabulary():
    vocab, merges = clip_vocab()
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == BOS and vocab["<|endoftext|>"] == EOS
    assert vocab["!"] == 0
    tok = make_tokenizer()
    # well-known ids of Stable Diffusion's most famous prompt
    ids = tok("a photo of an astronaut riding a horse", add_special_tokens=False)["input_ids"]
    assert ids == [320, 1125, 539, 550, 18376, 6765, 320, 4558]
    assert tok("A  PHOTO")["input_ids"] == [BOS, 320, 1125, EOS]


def test_the_diffusers_folder_tokenizer_agrees(tiny_models):
    from transformers import CLIPTokenizer

    folder = CLIPTokenizer.from_pretrained(tiny_models / "diffusers" / "tiny-sd1" / "tokenizer", local_files_only=True)
    text = "masterpiece, a (very) detailed café in Zürich at night — 8k, ☕"
    assert folder(text)["input_ids"] == make_tokenizer()(text)["input_ids"]


def test_chunks_are_77_tokens_with_start_end_and_padding():
    tok = make_tokenizer()
    (chunk,) = tokenize_weighted(tok, "a (cat:1.5)", EOS)
    assert len(chunk.ids) == 77 and chunk.ids[:4] == (BOS, 320, 2368, EOS) and set(chunk.ids[4:]) == {EOS}
    assert chunk.weights[:4] == (1.0, 1.0, 1.5, 1.0)
    (chunk,) = tokenize_weighted(tok, "a cat", 0)
    assert chunk.ids[3] == EOS and set(chunk.ids[4:]) == {0}
    (empty,) = tokenize_weighted(tok, "", EOS)
    assert empty.ids[:2] == (BOS, EOS)


def test_long_prompts_are_split_into_chunks_of_75_as_comfyui_does():
    tok = make_tokenizer()
    words = " ".join(["cat"] * 74 + ["astronaut"])  # "astronaut" is 1 token, fits exactly
    assert len(tokenize_weighted(tok, words, EOS)) == 1
    chunks = tokenize_weighted(tok, " ".join(["cat"] * 100), EOS)
    assert len(chunks) == 2
    assert chunks[0].ids.count(2368) == 75 and chunks[1].ids.count(2368) == 25
    # one weighted segment of 8+ tokens is cut exactly at token 75, even inside a word
    # (tests/diffusion/test_prompt_parsing.py covers the rest of ComfyUI's batching)
    long_word = "supercalifragilisticexpialidocious"
    pieces = tuple(tok(long_word, add_special_tokens=False)["input_ids"])
    n = len(pieces)
    assert n > 2
    chunks = tokenize_weighted(tok, " ".join(["cat"] * 74) + " " + long_word, EOS)
    assert len(chunks) == 2 and chunks[0].ids.count(2368) == 74 and chunks[0].ids[75:] == (pieces[0], EOS)
    assert chunks[1].ids[1:n] == pieces[1:] and chunks[1].ids[n] == EOS


@pytest.fixture(scope="module")
def clips(use_tiny_paths):
    with use_tiny_paths():
        return {
            family: CheckpointLoaderSimple().run(f"tiny-{family}.safetensors")[1] for family in ("sd1", "sd2", "sdxl")
        }


@pytest.mark.parametrize(("family", "dim", "pooled"), [("sd1", 32, 32), ("sd2", 48, 48), ("sdxl", 32 + 64, 32)])
def test_encoding_shapes(clips, family, dim, pooled):
    (entry,) = CLIPTextEncode().run("a photo of a cat", clips[family])
    cond, options = entry
    assert cond.shape == (1, 77, dim) and cond.dtype == torch.float32
    assert options["pooled_output"].shape == (1, pooled)
    long_cond, _ = clips[family].encode(" ".join(["cat"] * 160))
    assert long_cond.shape == (1, 77 * 3, dim)


def test_outputs_are_ordinary_tensors_that_plugins_may_modify(clips):
    cond, pooled = clips["sdxl"].encode("a cat")
    cond.mul_(2.0)  # inference-mode tensors would refuse this outside inference mode
    pooled.add_(1.0)


def test_sdxl_concatenates_both_encoders_and_pools_with_big_g(clips):
    clip = clips["sdxl"]
    cond, pooled = clip.encode("a cat")
    clip_l = clip.clone(parts=clip.parts[:1])
    clip_g = clip.clone(parts=clip.parts[1:])
    assert torch.equal(cond[..., :32], clip_l.encode("a cat")[0])
    assert torch.equal(cond[..., 32:], clip_g.encode("a cat")[0])
    g_model = clip.parts[1].handle.load()
    assert torch.equal(pooled, clip_g.encode("a cat")[1]) and pooled.shape[-1] == g_model.config.projection_dim


def test_clip_text_encode_sdxl_takes_a_text_per_encoder_and_the_sizes(clips):
    clip = clips["sdxl"]
    ((cond, options),) = CLIPTextEncodeSDXL().run(clip, 832, 1216, 0, 16, 1024, 1024, "a red cat", "a cat")
    assert cond.shape == (1, 77, 96)
    assert torch.equal(cond[..., :32], clip.encode("a cat")[0][..., :32])
    assert torch.equal(cond[..., 32:], clip.encode("a red cat")[0][..., 32:])
    assert torch.equal(options["pooled_output"], clip.encode("a red cat")[1])
    assert (options["width"], options["height"], options["crop_h"], options["target_width"]) == (832, 1216, 16, 1024)
    # prompts of different lengths: the shorter gets empty chunks
    ((long_cond, _),) = CLIPTextEncodeSDXL().run(clip, 1024, 1024, 0, 0, 1024, 1024, " ".join(["cat"] * 100), "a")
    assert long_cond.shape == (1, 154, 96)
    with pytest.raises(ConditioningInputError, match="clip"):
        CLIPTextEncodeSDXL().run(clips["sd1"], 1024, 1024, 0, 0, 1024, 1024, "a", "b")


def test_weights_scale_only_the_weighted_tokens_relative_to_the_empty_prompt(clips):
    clip = clips["sd1"]
    plain, _ = clip.encode("a cat")
    assert torch.equal(clip.encode("a (cat:1.0)")[0], plain)
    weighted, _ = clip.encode("a (cat:1.5)")
    empty, _ = clip.encode("")
    same = [i for i in range(77) if i != 2]
    assert torch.allclose(weighted[0, same], plain[0, same])
    assert torch.allclose(weighted[0, 2], empty[0, 2] + (plain[0, 2] - empty[0, 2]) * 1.5, atol=1e-5)
    assert not torch.allclose(weighted[0, 2], plain[0, 2])


def test_escaped_brackets_are_tokens(clips):
    tok = make_tokenizer()
    (chunk,) = tokenize_weighted(tok, r"\(cat\)", EOS)
    assert set(chunk.weights) == {1.0}
    assert chunk.ids[1:4] == tuple(tok("(cat)", add_special_tokens=False)["input_ids"])


def test_clip_set_last_layer_changes_the_encoding(clips):
    for family, default in (("sd1", -1), ("sd2", -2), ("sdxl", -2)):
        clip = clips[family]
        base, _ = clip.encode("a cat")
        assert torch.equal(CLIPSetLastLayer().run(clip, default).encode("a cat")[0], base)
        other = -2 if default == -1 else -1
        skipped = CLIPSetLastLayer().run(clip, other)
        assert skipped.clip_skip == other and clip.clip_skip is None  # the input is not modified
        assert not torch.allclose(skipped.encode("a cat")[0], base)
        # deeper than the model is clamped to its first layer rather than failing
        assert torch.isfinite(CLIPSetLastLayer().run(clip, -24).encode("a cat")[0]).all()


def test_sd2_diffusers_folders_missing_the_last_layer_keep_layer_numbers(clips, tiny_models, tmp_path):
    """diffusers' SD2 folders store 23 of 24 layers; -2 must still mean the original penultimate."""
    from nodes.diffusion.types import ClipPart

    clip = clips["sd2"]
    part = clip.parts[0]
    full = part.handle.load()
    truncated = type(full)(full.config.__class__(**{**full.config.to_dict(), "num_hidden_layers": 2}))
    truncated.load_state_dict({k: v for k, v in full.state_dict().items() if "layers.2." not in k})
    from nodes.diffusion.model_manager import get_manager

    handle = get_manager().handle(("test", "sd2-truncated"), "clip", lambda: truncated, target="clip_h")
    short = clip.clone(parts=[ClipPart(handle, part.tokenizer, default_layer=-2, layer_offset=1, pad_token="!")])
    assert torch.allclose(short.encode("a cat")[0], clip.encode("a cat")[0], atol=1e-6)


def test_conditioning_nodes(clips):
    a = CLIPTextEncode().run("a cat", clips["sdxl"])
    b = CLIPTextEncode().run("a dog", clips["sdxl"])
    both = ConditioningCombine().run(a, b)
    assert len(both) == 2 and both[0][0] is a[0][0] and both[1][0] is b[0][0]
    area = ConditioningSetArea().run(a, 64, 128, 8, 16, 0.5)
    assert area[0][1]["area"] == (16, 8, 2, 1) and area[0][1]["strength"] == 0.5
    assert "area" not in a[0][1]  # inputs untouched
    mask = torch.ones(32, 32)
    masked = ConditioningSetMask().run(a, mask, 0.8, "mask bounds")
    assert masked[0][1]["mask"].shape == (1, 32, 32) and masked[0][1]["set_area_to_bounds"] is True
    assert masked[0][1]["mask_strength"] == 0.8
    zero = ConditioningZeroOut().run(a)
    assert not zero[0][0].any() and not zero[0][1]["pooled_output"].any()
    assert a[0][0].any()
    with pytest.raises(ConditioningInputError, match="conditioning_2"):
        ConditioningCombine().run(a, "nope")


def test_text_encoding_through_the_engine_is_cached(tiny_paths):
    from engine import Executor, validate_prompt
    from nodes.registry import builtin_registry

    executor = Executor(builtin_registry())
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1.safetensors"}},
        "2": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["1", 1], "stop_at_clip_layer": -2}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a (tiny:1.3) cat", "clip": ["2", 0]}},
        "4": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
    }
    result = validate_prompt(prompt, executor.registry, ["4"])
    assert result.ok, result.node_errors
    run = executor.execute_sync("p1", result.prompt, ["4"], order=result.order)
    assert run.status_str == "success", run
    again = executor.execute_sync("p2", result.prompt, ["4"], order=result.order)
    assert again.status_str == "success" and not set(again.executed) & {"1", "2", "3"}


def test_textual_inversion_embeddings(clips, tiny_paths):
    from safetensors.torch import save_file

    folder = tiny_paths.models / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer()
    red = tok("red", add_special_tokens=False)["input_ids"]
    sd1, sdxl = clips["sd1"], clips["sdxl"]
    table = sd1.parts[0].handle.load().get_input_embeddings().weight
    save_file({"emb_params": table[red].detach().clone()}, str(folder / "red1.safetensors"))
    tables = [part.handle.load().get_input_embeddings().weight for part in sdxl.parts]
    save_file(
        {"clip_l": tables[0][red].detach().clone(), "clip_g": tables[1][red].detach().clone()},
        str(folder / "red-xl.safetensors"),
    )
    pickled = folder / "old.pt"
    torch.save({"string_to_param": {"*": table[red].detach().clone()}}, pickled)
    try:
        assert torch.equal(sd1.encode("a embedding:red1 cat")[0], sd1.encode("a red cat")[0])
        assert torch.equal(sd1.encode("a (embedding:red1.safetensors:1.3), cat")[0], sd1.encode("a (red:1.3), cat")[0])
        assert torch.equal(sd1.encode("a embedding:nothing cat")[0], sd1.encode("a cat")[0])  # skipped, logged
        cond, pooled = sdxl.encode("embedding:red-xl cat")
        ref_cond, ref_pooled = sdxl.encode("red cat")
        assert torch.equal(cond, ref_cond) and torch.equal(pooled, ref_pooled)
        with pytest.raises(ConditioningInputError, match="text: old.pt.*trusted_pickles"):
            CLIPTextEncode().run("embedding:old", sd1)
    finally:
        for f in ("red1.safetensors", "red-xl.safetensors", "old.pt"):
            (folder / f).unlink()


def test_comfyui_clip_methods_for_plugins(clips):
    sd1, sdxl = clips["sd1"], clips["sdxl"]
    tokens = sd1.tokenize("a (cat:1.5)")
    assert list(tokens) == ["l"] and len(tokens["l"]) == 1 and len(tokens["l"][0]) == 77
    assert tokens["l"][0][:4] == [(BOS, 1.0), (320, 1.0), (2368, 1.5), (EOS, 1.0)]
    cond, pooled = sd1.encode_from_tokens(tokens, return_pooled=True)
    ref_cond, ref_pooled = sd1.encode("a (cat:1.5)")
    assert torch.equal(cond, ref_cond) and torch.equal(pooled, ref_pooled)
    assert torch.equal(sd1.encode_from_tokens(tokens), ref_cond)
    # a plugin editing weights in the token lists
    tokens["l"][0][2] = (2368, 1.0)
    assert torch.equal(sd1.encode_from_tokens(tokens), sd1.encode("a cat")[0])
    xl_tokens = sdxl.tokenize("a cat")
    assert sorted(xl_tokens) == ["g", "l"] and xl_tokens["g"][0][4][0] == 0  # bigG pads with "!"
    ((xl_cond, options),) = sdxl.encode_from_tokens_scheduled(xl_tokens, add_dict={"width": 512})
    assert torch.equal(xl_cond, sdxl.encode("a cat")[0]) and options["width"] == 512
    assert options["pooled_output"].shape == (1, 32)
    skipped = sd1.clone()
    skipped.clip_layer(-2)
    assert sd1.clip_skip is None and not torch.equal(skipped.encode("a cat")[0], sd1.encode("a cat")[0])


def test_shipped_merges_are_what_the_derivation_script_writes(tmp_path):
    """weft_tools.clip_vocab writes the merges deterministically: the shipped file is reproducible."""
    import gzip

    from nodes.diffusion.clip_text import MERGES_FILE
    from weft_tools.clip_vocab import NUM_MERGES, read_bpe, write_merges

    merges = gzip.decompress(MERGES_FILE.read_bytes()).decode("utf-8").splitlines()
    assert len(merges) == NUM_MERGES
    # an open_clip-style source: a version header, the merges, then more merges CLIP does not use
    source = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    source.write_bytes(gzip.compress(("#version: 0.2\n" + "\n".join(merges + ["x y", "z w"])).encode("utf-8")))
    assert read_bpe(source) == merges
    assert write_merges(merges, tmp_path / "out.txt.gz").read_bytes() == MERGES_FILE.read_bytes()
