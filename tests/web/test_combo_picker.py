"""Combos with many choices open a filterable list: typing narrows it, the arrows and Enter
pick, Escape or a click elsewhere closes it and gives the keyboard back to the canvas. Short
combos keep the plain menu."""

from __future__ import annotations

from tests.web.helpers import add_node, canvas_point, new_tab, node, widget_center

PICKER = ".combo-picker"


def picker_rows(page) -> list[str]:
    return page.locator(f"{PICKER} .combo-options li[data-index]").all_inner_texts()


def active_row(page) -> str:
    return page.locator(f"{PICKER} .combo-options li.active").inner_text()


def test_long_combo_filters_and_picks_with_the_keyboard(page, screenshots):
    new_tab(page)
    sampler = add_node(page, "KSamplerSelect", canvas_point(page, 0.3, 0.3), expect_type="KSamplerSelect")
    choices = page.evaluate("window.weft.defs.KSamplerSelect.inputs.find(i => i.name === 'sampler_name').choices")
    assert len(choices) > 15
    start = node(page, sampler)["widgets_values"]["sampler_name"]

    page.mouse.click(*widget_center(page, sampler, "sampler_name"))
    page.wait_for_selector(PICKER)
    assert picker_rows(page) == choices
    assert active_row(page) == start  # it opens on the current value
    assert page.evaluate("document.activeElement.className") == "combo-filter"
    assert page.inner_text(f"{PICKER} .combo-count") == f"{len(choices)} choices"

    page.keyboard.type("dpmpp 2m sde")  # every word must appear
    shown = picker_rows(page)
    expected = [c for c in choices if all(w in c for w in ("dpmpp", "2m", "sde"))]
    assert shown == expected and len(shown) >= 2
    assert page.inner_text(f"{PICKER} .combo-count") == f"{len(shown)} of {len(choices)}"
    assert active_row(page) == shown[0]
    page.screenshot(path=str(screenshots / "combo-picker-filtered.png"))
    page.keyboard.press("ArrowDown")
    assert active_row(page) == shown[1]
    page.keyboard.press("Enter")
    assert page.locator(PICKER).count() == 0
    assert node(page, sampler)["widgets_values"]["sampler_name"] == shown[1]

    # reopened, it starts on the new value; Escape closes it without a change and hands the
    # keyboard back to the canvas (Ctrl+Z undoes the pick)
    page.mouse.click(*widget_center(page, sampler, "sampler_name"))
    page.wait_for_selector(PICKER)
    assert active_row(page) == shown[1]
    page.keyboard.press("PageDown")
    page.keyboard.press("Escape")
    assert page.locator(PICKER).count() == 0
    assert node(page, sampler)["widgets_values"]["sampler_name"] == shown[1]
    page.keyboard.press("Control+z")
    assert node(page, sampler)["widgets_values"]["sampler_name"] == start

    # nothing matches: Enter picks nothing; a click elsewhere closes the list
    page.mouse.click(*widget_center(page, sampler, "sampler_name"))
    page.wait_for_selector(PICKER)
    page.keyboard.type("zzzz")
    assert picker_rows(page) == [] and page.locator(f"{PICKER} .combo-none").is_visible()
    page.keyboard.press("Enter")
    assert node(page, sampler)["widgets_values"]["sampler_name"] == start
    page.mouse.click(*canvas_point(page, 0.8, 0.8))
    assert page.locator(PICKER).count() == 0

    # the mouse picks too
    page.mouse.click(*widget_center(page, sampler, "sampler_name"))
    page.wait_for_selector(PICKER)
    page.keyboard.type("ddim")
    page.click(f"{PICKER} .combo-options li:text-is('ddim')")
    assert node(page, sampler)["widgets_values"]["sampler_name"] == "ddim"


def test_short_combo_keeps_the_plain_menu(page):
    new_tab(page)
    math = add_node(page, "MathInt", canvas_point(page, 0.3, 0.3), expect_type="MathInt")
    page.mouse.click(*widget_center(page, math, "operation"))
    page.wait_for_selector(".combo-menu")
    assert page.locator(PICKER).count() == 0
    page.keyboard.press("Escape")
    assert page.locator(".combo-menu").count() == 0
