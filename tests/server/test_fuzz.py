"""Issue 13, bad input: property-based fuzzing (hypothesis) of every route's body and query, and
of prompt graphs, against a real ``python main.py`` process.

After each generated case: the answer is not a 5xx, the server still answers, and ``GET
/history`` is still strict JSON (no NaN, nothing a browser's ``JSON.parse`` refuses), since one
accepted prompt once broke the history for everyone. Graphs use real node names, real input
names and links, so many of them pass validation and run in the worker.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodes.registry import builtin_registry
from tests.support.main_process import MainProcess, main_process

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

#: POST routes and whether their body is JSON (the uploads are multipart)
POST_ROUTES = ["/prompt", "/queue", "/history", "/interrupt", "/free", "/api/plugins/missing"]
GET_ROUTES = [
    "/prompt",
    "/queue",
    "/history",
    "/history/{x}",
    "/object_info",
    "/object_info/{x}",
    "/system_stats",
    "/embeddings",
    "/models",
    "/models/{x}",
    "/extensions",
    "/features",
    "/view",
    "/api/jobs",
    "/api/jobs/{x}",
    "/api/plugins",
    "/api/userdata",
]

REGISTRY = builtin_registry()
CLASS_NAMES = sorted(REGISTRY)
#: nodes that run without models, so generated graphs often pass validation and run
SIMPLE = [
    name
    for name in (
        "PrimitiveString",
        "PrimitiveInt",
        "PrimitiveFloat",
        "StringConcatenate",
        "StringReplace",
        "MathInt",
        "PreviewAny",
        "EmptyLatentImage",
        "LatentUpscale",
        "EmptyImage",
        "ImageInvert",
        "SolidMask",
        "PrimitiveBoolean",
        "StringLength",
    )
    if name in REGISTRY
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def input_values(spec: Any, ids: list[str]) -> st.SearchStrategy[Any]:
    """Mostly what the input accepts (its default, one of its choices), else anything: a
    scalar of any kind or a link, sometimes to a missing node or output."""
    plausible = [st.just(spec.options["default"])] if "default" in spec.options else []
    if spec.choices:
        plausible.append(st.sampled_from(list(spec.choices)))
    link = st.tuples(st.sampled_from([*ids, "99"]), st.integers(-1, 3)).map(list)
    return st.one_of(*plausible, *plausible, scalars, link)


@st.composite
def graphs(draw: Any) -> dict[str, Any]:
    """A prompt of up to 5 real node classes (often simple ones), their own inputs, values and links."""
    ids = [str(i) for i in range(draw(st.integers(1, 5)))]
    prompt: dict[str, Any] = {}
    for node_id in ids:
        class_type = draw(st.one_of(st.sampled_from(SIMPLE), st.sampled_from(CLASS_NAMES)))
        inputs = {spec.name: draw(input_values(spec, ids)) for spec in REGISTRY[class_type].schema.inputs[:8]}
        prompt[node_id] = {"class_type": class_type, "inputs": inputs}
    # an output node, so the graph has something to run
    prompt["out"] = {"class_type": "PreviewAny", "inputs": {"source": [draw(st.sampled_from(ids)), 0]}}
    return prompt


def strict_json(text: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def call(server: MainProcess, method: str, path: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(server.url + path, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def still_well(server: MainProcess) -> None:
    assert server.proc.poll() is None, "the server process died"
    with urllib.request.urlopen(server.url + "/history?max_items=200", timeout=60) as response:
        strict_json(response.read())
    with urllib.request.urlopen(server.url + "/api/jobs", timeout=60) as response:
        strict_json(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainProcess]:
    with main_process(tmp_path_factory.mktemp("fuzz"), "--max-prompt-seconds", "30") as live:
        yield live


@SETTINGS
@given(route=st.sampled_from(POST_ROUTES), body=st.one_of(json_values.map(json.dumps), st.binary(max_size=64)))
def test_post_bodies(server: MainProcess, route: str, body: Any) -> None:
    raw = body.encode() if isinstance(body, str) else body
    assert call(server, "POST", route, raw) < 500
    still_well(server)


@SETTINGS
@given(
    route=st.sampled_from(GET_ROUTES),
    part=st.text(min_size=1, max_size=20),
    query=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4),
)
def test_get_paths_and_queries(server: MainProcess, route: str, part: str, query: dict[str, str]) -> None:
    path = route.replace("{x}", urllib.parse.quote(part, safe=""))
    query_string = urllib.parse.urlencode(query)
    assert call(server, "GET", path + ("?" + query_string if query_string else "")) < 500
    still_well(server)


@SETTINGS
@given(
    prompt=graphs(),
    extra=st.one_of(
        st.just({}),
        st.dictionaries(
            st.sampled_from(["client_id", "prompt_id", "number", "front", "extra_data", "partial_execution_targets"]),
            json_values,
            max_size=3,
        ),
    ),
)
def test_prompt_graphs(server: MainProcess, prompt: dict[str, Any], extra: dict[str, Any]) -> None:
    body = json.dumps({"prompt": prompt, **extra}).encode()
    assert call(server, "POST", "/prompt", body) < 500
    still_well(server)
