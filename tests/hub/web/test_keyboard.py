"""The web UI with the keyboard alone, on a 390 px-wide phone screen, in real Chromium: sign in,
reach every page from the navigation, open a camera's live view and a day of its recordings,
and approve an agency request (choosing the camera and how faces are sent, typing the
passphrase). Only page.keyboard moves and acts: no mouse, no element.click(). Every element that takes the focus shows it (a
:focus-visible outline), and on every page the Tab key goes round every element and back to the
first one, forwards and backwards: no keyboard trap."""

from __future__ import annotations

import re

from tests.hub.web.conftest import PASSPHRASE, PHONE, page_for
from tests.hub.web.test_neighbourhood_pages import _agency_status, _ask, _status, world

__all__ = ["world"]  # the module's gateway, agency and hubs (test_neighbourhood_pages.py)

FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return {tag: "BODY", id: "", href: null, type: "", name: "",
    value: "", text: "", checked: false, visible: false, outline: "", outline_width: 0,
    in_main: false, in_nav: false, key: ["BODY", "", ""]};
  const style = getComputedStyle(e);
  return {tag: e.tagName, id: e.id, href: e.getAttribute("href"), type: e.type || "",
          name: e.getAttribute("name") || "", value: e.value || "",
          text: (e.innerText || "").trim().slice(0, 80), checked: !!e.checked,
          // A date or time field, or a video's controls, take the focus in their own parts
          // (a picker button, a play button) which leave the element itself unmatched by
          // :focus-visible: the element must show :focus-within.
          visible: e.matches(":focus-visible") || (e.matches(":focus-within") &&
                   (["date", "time"].includes(e.type) || e.tagName === "VIDEO")),
          outline: style.outlineStyle,
          outline_width: parseFloat(style.outlineWidth),
          in_main: !!e.closest("main"), in_nav: !!e.closest("nav"),
          key: [e.tagName, e.getAttribute("href") || e.getAttribute("name") || "",
                (e.innerText || e.value || "").trim().slice(0, 40)]};
}"""

# Every element the Tab key should reach on a page (what a browser puts in the tab order).
TABBABLE = """() => [...document.querySelectorAll(
  'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"]), video[controls]')]
  .filter(e => !e.disabled && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden')
  // A radio group is one stop (its checked radio); the arrow keys move inside it.
  .filter(e => !(e.type === 'radio' && !e.checked &&
                 [...document.getElementsByName(e.name)].some(r => r.checked)))
  .map(e => [e.tagName, e.getAttribute("href") || e.getAttribute("name") || "", (e.innerText || e.value || "").trim().slice(0, 40)])"""


def _focused(page) -> dict:
    return page.evaluate(FOCUSED)


def _check_visible(focus: dict) -> None:
    """The focused element shows it: :focus-visible matched and a real outline drawn."""
    if focus["tag"] == "BODY":
        return
    assert focus["visible"], str(focus)
    assert focus["outline"] not in ("none", "") and focus["outline_width"] >= 2, focus


def _press_until(page, match, key: str = "Tab", limit: int = 150) -> dict:
    """Press a key until the focused element matches; check every focus on the way is visible."""
    seen = []
    for _ in range(limit):
        page.keyboard.press(key)
        focus = _focused(page)
        _check_visible(focus)
        if match(focus):
            return focus
        seen.append((focus["tag"], focus.get("id"), focus.get("href"), focus.get("text")))
    raise AssertionError(f"{key} never reached the element; it went through {seen}")


def _follow(page, hub, href: str) -> None:
    """Tab to the link to `href` and press Enter; wait for its page."""
    _press_until(page, lambda f: f["tag"] == "A" and f["href"] == href)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")
    assert urlpath(page.url) == href, page.url


def urlpath(url: str) -> str:
    return re.sub(r"^\w+://[^/]+", "", url).split("#", 1)[0]


def _no_trap(page) -> None:
    """From the top of the page, Tab goes through every element and comes round to the first
    again; Shift+Tab then goes back the other way."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Tab")
    first = _focused(page)
    assert first["text"] == "Skip to content", first
    tabbable = page.evaluate(TABBABLE)
    count = len(tabbable)
    reached = []
    back_to_first = False
    # A video's own controls take a few stops of their own: allow for them generously.
    for _ in range(count + 40):
        page.keyboard.press("Tab")
        focus = _focused(page)
        _check_visible(focus)
        if focus == first:
            back_to_first = True
            break
        if focus["tag"] != "BODY":
            reached.append(tuple(focus["key"]))
    assert back_to_first, f"Tab never came back to the first element of {page.url}"
    # Every tabbable element (the first is the skip link, reached again at the end).
    missing = [key for key in tabbable[1:] if tuple(key) not in set(reached)]
    assert not missing, f"Tab never reached {missing} on {page.url}"
    page.keyboard.press("Shift+Tab")
    back = _focused(page)
    assert back != first, back
    _press_until(page, lambda f: f == first, key="Shift+Tab", limit=count + 40)


def _skip_link_works(page) -> None:
    """The first Tab shows the skip link; Enter on it makes the next Tab land inside <main>."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Tab")
    skip = page.evaluate("""() => { const r = document.activeElement.getBoundingClientRect();
                              return {text: document.activeElement.innerText,
                                      x: r.left, y: r.top, w: r.width}; }""")
    assert skip["text"] == "Skip to content" and skip["x"] >= 0 and skip["w"] > 0, skip
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    focus = _focused(page)
    assert focus["in_main"], focus


def test_everything_works_with_the_keyboard_alone_on_a_phone(browser, world):
    maple = world["maple"]
    request_id = _ask(world, "2026-PD9-0500")
    with page_for(browser, maple, PHONE) as page:
        page.set_default_timeout(120_000)
        page.goto(maple.url + "/login")
        page.wait_for_load_state("networkidle")
        _press_until(page, lambda f: f["id"] == "name")
        page.keyboard.press("Control+A")
        page.keyboard.type("owner")
        _press_until(page, lambda f: f["id"] == "passphrase")
        page.keyboard.type(PASSPHRASE)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_load_state("networkidle")
        assert urlpath(page.url) == "/"
        _skip_link_works(page)

        # Every page of the navigation, each checked for focus and traps.
        nav = page.eval_on_selector_all("nav a[href]", "els => els.map(e => e.getAttribute('href'))")
        assert {"/", "/recordings", "/requests", "/neighbourhood", "/settings"} <= set(nav)
        for href in nav + ["/"]:
            page.evaluate("document.activeElement && document.activeElement.blur()")
            _follow(page, maple, href)
            _no_trap(page)

        # A camera's live view, from Home.
        _follow(page, maple, "/cameras/porch")
        page.wait_for_function("document.getElementById('live-state').textContent.length > 0")
        _no_trap(page)

        # A day of recordings, with its player and timeline.
        page.evaluate("document.activeElement && document.activeElement.blur()")
        _follow(page, maple, "/recordings")
        _press_until(page, lambda f: (f["href"] or "").startswith("/recordings/porch?day="))
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_load_state("networkidle")
        assert urlpath(page.url).startswith("/recordings/porch?day=")
        _no_trap(page)

        # An agency request, approved.
        page.evaluate("document.activeElement && document.activeElement.blur()")
        _follow(page, maple, "/requests")
        _follow(page, maple, f"/requests/{request_id}")
        box = _press_until(page, lambda f: f["name"] == "camera" and f["value"] == "porch")
        assert box["checked"]
        page.keyboard.press("Space")
        assert _focused(page)["checked"] is False
        page.keyboard.press("Space")
        assert _focused(page)["checked"] is True
        radio = _press_until(page, lambda f: f["name"] == "blur")
        assert (radio["value"], radio["checked"]) == ("yes", True)
        page.keyboard.press("ArrowDown")  # to "Send as recorded"
        radio = _focused(page)
        assert (radio["value"], radio["checked"]) == ("no", True)
        _press_until(page, lambda f: f["text"] == "Update the preview")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_load_state("networkidle")
        assert "blur=no" in page.url and "camera=porch" in page.url
        _no_trap(page)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        _press_until(page, lambda f: f["id"] == "approve-pass")
        page.keyboard.type(PASSPHRASE)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        # The progress page follows the job and then loads the outcome.
        page.wait_for_url(re.compile(r".*\?decided=approved$"), timeout=180_000)
        page.wait_for_load_state("networkidle")
        assert page.locator("#status").inner_text().startswith("Status: approved")
        _no_trap(page)
    assert _status(world, request_id) == "approved"
    assert _agency_status(world, request_id)["approved"] == 1
