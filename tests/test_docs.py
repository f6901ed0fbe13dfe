"""The documentation's links: every relative link in the README, ARCHITECTURE.md, the
guides in docs/ and the benchmark results resolves to a file, and every #anchor to a
heading of that file (GitHub's slugs). The README stays a front door."""

import glob
import os
import re

import pytest

from conftest import ROOT

PAGES = sorted(["README.md", "ARCHITECTURE.md", "bench/results/README.md"]
               + [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation gone, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    with open(path) as handle:
        text = FENCE.sub("", handle.read())
    seen, result = {}, set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else "%s-%d" % (base, count))
    return result


def links(path):
    with open(path) as handle:
        text = FENCE.sub("", handle.read())
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans hold no links
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z]+:", target)]  # http(s), mailto: not ours to check


def broken_links(page):
    """The links of the page at `page` that lead nowhere, each with why."""
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(full):
            broken.append("%s: no such file" % target)
        elif anchor and (not full.endswith(".md") or anchor not in anchors(full)):
            broken.append("%s: no such heading" % target)
    return broken


@pytest.mark.parametrize("page", PAGES)
def test_every_link_resolves(page):
    assert not broken_links(os.path.join(ROOT, page))


def test_the_readme_is_a_front_door():
    with open(os.path.join(ROOT, "README.md")) as handle:
        assert len(handle.read().splitlines()) <= 250


def test_the_checker_finds_a_broken_anchor_and_file(tmp_path):
    """The checker itself: headings and links it must find, an anchor and a file it must not."""
    page = tmp_path / "page.md"
    page.write_text("# Picking the `underlay`\n## Behind a 1:1 NAT\n## Behind a 1:1 NAT\n"
                    "[ok](#behind-a-11-nat-1) [ok](page.md#picking-the-underlay) "
                    "[web](https://example.org/x) `[code](nowhere.md)`\n"
                    "[gone](#behind-a-nat) [gone](other.md) [gone](page.md#nothing)\n")
    assert anchors(str(page)) == {"picking-the-underlay", "behind-a-11-nat", "behind-a-11-nat-1"}
    assert slug("What each host gets:") == "what-each-host-gets"
    assert broken_links(str(page)) == ["#behind-a-nat: no such heading", "other.md: no such file",
                                       "page.md#nothing: no such heading"]
