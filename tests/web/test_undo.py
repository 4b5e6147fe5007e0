"""Every edit goes into one undo history: add, move, wire, widgets, bypass, group, paste, delete."""

from __future__ import annotations

from tests.web.helpers import (
    add_node,
    canvas_point,
    drag,
    new_tab,
    node,
    set_text_widget,
    socket,
    state,
    title,
    widget_center,
)


def graph_content(page):
    g = state(page)
    g["extra"].pop("ds", None)
    return g


def test_every_edit_undoes_and_redoes(page, screenshots):
    new_tab(page)
    snapshots = [graph_content(page)]

    def step():
        snapshots.append(graph_content(page))
        assert snapshots[-1] != snapshots[-2], "the step changed nothing"

    a = add_node(page, "MathInt", canvas_point(page, 0.1, 0.2), expect_type="MathInt")
    step()
    b = add_node(page, "preview as text", canvas_point(page, 0.5, 0.2), expect_type="PreviewAny")
    step()
    start = title(page, a)
    drag(page, start, (start[0] + 60, start[1] + 140))  # move
    step()
    drag(page, socket(page, a, "output", 0), socket(page, b, "input", 0))  # wire
    step()
    set_text_widget(page, a, "a", "12")  # type a number
    step()
    x, y = widget_center(page, a, "b")
    drag(page, (x, y), (x + 60, y), steps=10)  # drag a number
    step()
    assert node(page, a)["widgets_values"]["b"] > 0
    page.mouse.click(*title(page, a))
    page.keyboard.press("Control+b")  # bypass
    step()
    assert node(page, a)["mode"] == 4
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+g")  # group
    step()
    assert len(state(page)["groups"]) == 1
    page.mouse.click(*title(page, b))
    page.keyboard.press("Control+c")
    page.mouse.move(*canvas_point(page, 0.5, 0.7))
    page.keyboard.press("Control+v")  # paste
    step()
    assert len(state(page)["nodes"]) == 3
    page.keyboard.press("Delete")  # delete the pasted copy
    step()
    page.mouse.click(*title(page, a))
    page.keyboard.press("Control+d")  # duplicate
    step()
    page.screenshot(path=str(screenshots / "undo-before.png"))

    # undo back to the empty graph, checking every intermediate state
    for expected in reversed(snapshots[:-1]):
        page.keyboard.press("Control+z")
        assert graph_content(page) == expected
    assert page.is_disabled("#undo-button")
    # redo all the way forward (toolbar button and keyboard)
    page.click("#redo-button")
    assert graph_content(page) == snapshots[1]
    for expected in snapshots[2:]:
        page.keyboard.press("Control+y")
        assert graph_content(page) == expected
    assert page.is_disabled("#redo-button")
    # a new edit after undo drops the redo branch
    page.keyboard.press("Control+z")
    page.mouse.click(*canvas_point(page, 0.9, 0.9))
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+m")  # mute everything
    assert all(n["mode"] == 2 for n in state(page)["nodes"])
    assert page.is_disabled("#redo-button")


def test_box_select_and_move_together(page):
    new_tab(page)
    ids = [add_node(page, "MathInt", canvas_point(page, 0.1 + 0.25 * i, 0.3), expect_type="MathInt") for i in range(3)]
    before = {n["id"]: n["pos"] for n in state(page)["nodes"]}
    # ctrl-drag a box around the first two
    drag(page, canvas_point(page, 0.05, 0.15), canvas_point(page, 0.6, 0.85), modifiers=["Control"])
    assert sorted(page.evaluate("[...window.weft.selection]")) == sorted(ids[:2])
    start = title(page, ids[0])
    drag(page, start, (start[0] + 30, start[1] + 50))
    after = {n["id"]: n["pos"] for n in state(page)["nodes"]}
    for i in ids[:2]:
        assert after[i] == [before[i][0] + 30, before[i][1] + 50]
    assert after[ids[2]] == before[ids[2]]
    # shift-click adds to the selection
    page.keyboard.down("Shift")
    page.mouse.click(*title(page, ids[2]))
    page.keyboard.up("Shift")
    assert sorted(page.evaluate("[...window.weft.selection]")) == sorted(ids)
    page.keyboard.press("Control+z")
    assert {n["id"]: n["pos"] for n in state(page)["nodes"]} == before


def test_resize_and_collapse_a_node(page):
    new_tab(page)
    n = add_node(page, "MathInt", canvas_point(page, 0.3, 0.3), expect_type="MathInt")
    width = node(page, n)["size"][0]
    corner = page.evaluate(
        f"""(() => {{ const app = window.weft, nd = app.state.nodes.find(x => x.id === {n}), lay = app.renderer.layout(nd);
            const [sx, sy] = app.renderer.toScreen(nd.pos[0] + lay.w - 4, nd.pos[1] + lay.h - 4);
            const r = app.renderer.canvas.getBoundingClientRect(); return [r.left + sx, r.top + sy]; }})()"""
    )
    drag(page, tuple(corner), (corner[0] + 80, corner[1] + 60))
    size = node(page, n)["size"]
    scale = state(page)["extra"]["ds"]["scale"]
    assert size[0] == width + round(80 / scale)
    tx, ty = title(page, n)
    page.mouse.click(tx - 47, ty)  # the dot left of the title collapses the node
    assert node(page, n).get("collapsed") is True
    page.keyboard.press("Control+z")
    assert "collapsed" not in node(page, n)
    page.keyboard.press("Control+z")
    assert node(page, n)["size"][0] == width


def test_paste_with_input_links(page):
    new_tab(page)
    src = add_node(page, "primitive int", canvas_point(page, 0.1, 0.3), expect_type="PrimitiveInt")
    dst = add_node(page, "preview as text", canvas_point(page, 0.45, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, src, "output", 0), title(page, dst))
    page.mouse.click(*title(page, dst))
    page.keyboard.press("Control+c")
    page.mouse.move(*canvas_point(page, 0.45, 0.7))
    page.keyboard.press("Control+v")  # plain paste: no links from outside the copy
    page.mouse.move(*canvas_point(page, 0.75, 0.7))
    page.keyboard.press("Control+Shift+v")  # keeps the incoming link
    nodes = state(page)["nodes"]
    assert [n["type"] for n in nodes] == ["PrimitiveInt", "PreviewAny", "PreviewAny", "PreviewAny"]
    targets = sorted(k["target_id"] for k in state(page)["links"])
    assert targets == [dst, nodes[3]["id"]]
