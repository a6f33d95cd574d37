"""Every hook in ``omnicloud.hookspecs`` is documented in docs/plugins.md with its exact
signature, and named by at least one test. Adding a hook without both fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from omnicloud import hookspecs

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"


def specs() -> dict[str, Any]:
    return {
        name: fn
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if getattr(fn, "omnicloud_spec", None) is not None
    }


def signature_line(name: str, fn: Any) -> str:
    def text(annotation: Any) -> str:
        return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)

    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {text(p.annotation)}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {text(sig.return_annotation)}:"


def normalise(source: str) -> str:
    """Whitespace-insensitive, so a signature may be wrapped over several lines."""
    flat = re.sub(r"\s+", " ", source)
    return flat.replace("( ", "(").replace(" )", ")").replace(",)", ")")


def sections(markdown: str) -> dict[str, str]:
    """``### heading`` -> its text up to the next heading of level 1 to 3."""
    out: dict[str, str] = {}
    current: str | None = None
    for line in markdown.splitlines():
        heading = re.match(r"^(#{1,3}) (.+?)\s*$", line)
        if heading:
            current = heading.group(2).strip("` ") if len(heading.group(1)) == 3 else None
            if current is not None:
                out[current] = ""
            continue
        if current is not None:
            out[current] += line + "\n"
    return out


def test_hookspecs_are_found():
    assert {"register_routes", "resolve_unit_price", "after_event"} <= set(specs())


@pytest.mark.parametrize("name", sorted(specs()))
def test_hook_is_documented_with_its_signature(name):
    docs = sections(GUIDE.read_text(encoding="utf-8"))
    assert name in docs, f"docs/plugins.md has no '### {name}' section"
    section = docs[name]
    fn = specs()[name]
    for param in inspect.signature(fn).parameters:
        assert re.search(rf"\b{param}\b", section), f"section {name} never mentions parameter {param!r}"
    expected = signature_line(name, fn)
    assert expected in normalise(section), f"section {name} lacks the exact signature:\n{expected}"
    opts = fn.omnicloud_spec
    if opts["firstresult"]:
        assert "firstresult**" in section or "**firstresult" in section, f"{name}: say it is firstresult"
    else:
        assert "not firstresult" in section, f"{name}: say it is not firstresult"


def test_reference_documents_only_real_hooks():
    text = GUIDE.read_text(encoding="utf-8")
    reference = text.split("## Hook reference", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^### (\S+)\s*$", reference, flags=re.MULTILINE))
    assert documented == set(specs())


def files_with_tests() -> list[Path]:
    files = [*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("plugins/*/tests/**/test_*.py")]
    return [f for f in files if f.resolve() != Path(__file__).resolve()]


@pytest.mark.parametrize("name", sorted(specs()))
def test_hook_is_named_by_a_test(name):
    pattern = re.compile(rf"\b{name}\b")
    testing = [
        f.relative_to(ROOT) for f in files_with_tests() if pattern.search(f.read_text(encoding="utf-8"))
    ]
    assert testing, f"no test under tests/ or plugins/*/tests/ names the hook {name}"
