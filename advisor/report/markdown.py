"""The Markdown report: headings, tables and fenced commands, readable raw or rendered.

Text from a model file or a path goes through :func:`md_text`, so a hostile name can neither
break a table (``|``), open code (backticks), nor smuggle HTML or a link into a renderer that
allows them (GitHub, most editors). Charts are not embedded; the report points to the HTML/PDF.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_ENTITY_RE = re.compile(r"&(?=#?\w+;)")
# Characters Markdown would give a meaning to. `_` is left alone (GitHub-flavored Markdown does not
# emphasize inside words, and names like pixel_values stay readable raw); a bracket only when it
# could close a link ("](" or "]["), so shapes like [batch, 32] stay readable too.
_MD_SPECIAL = re.compile(r"([\\`*|]|\](?=[(\[]))")


# GitHub-flavored Markdown (and markdown-it's linkify) turn bare ``http://``/``https://``/``ftp://``
# URLs, ``www.`` domains and e-mail addresses into links (https://github.github.com/gfm/#autolinks-extension-).
# A backslash before the ``:``, the ``.`` or the ``@`` is an escape both honour (they render the
# character itself), and the autolink scanners no longer see the pattern.
_AUTOLINK_COLON = re.compile(r"(?i)(\b(?:https?|ftp|file|mailto|xmpp))(?=:)")
_AUTOLINK_WWW = re.compile(r"(?i)(\bwww)(?=\.)")
_AUTOLINK_AT = re.compile(r"(?<=\w)(?=@\w)")


def md_text(value: Any) -> str:
    """``value`` as one line of inert Markdown text (safe in table cells and headings).

    Inert: no table cell breaks (``|``), no code, no HTML, no links, no autolinks from bare URLs.
    """
    text = " ".join(str(value).split())
    text = _ENTITY_RE.sub("&amp;", text)
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _AUTOLINK_COLON.sub(r"\1\\", text)
    text = _AUTOLINK_WWW.sub(r"\1\\", text)
    return _AUTOLINK_AT.sub(r"\\", text)


def fenced(code: str, info: str = "") -> str:
    """``code`` in a fence longer than any run of backticks inside it."""
    longest = max((len(m.group(0)) for m in re.finditer(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{code}\n{fence}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A GitHub-flavored Markdown table; every cell escaped."""
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(md_text(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(md_text(c) or " " for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _kv(rows: Sequence[tuple[str, str]], heading: str = "Property") -> str:
    return md_table([heading, "Value"], rows)


def render_markdown(ctx: dict[str, Any]) -> str:
    """The Markdown report for a context from :func:`advisor.report.context.build_context`."""
    v = ctx["verdict"]
    out: list[str] = [
        f"# {md_text(ctx['title'])}",
        "",
        f"Generated {md_text(ctx['generated_at'])} by Memory Advisor {md_text(ctx['advisor_version'])}. "
        "Charts are in the HTML/PDF report.",
        "",
        f"## Verdict: {md_text(v['headline'])} — {md_text(v['amount'])}",
        "",
        f"**{md_text(v['line'])}**",
        "",
        f"- Needs to run: {md_text(v['required'])} (range {md_text(v['required_range'])})",
        f"- Predicted peak: {md_text(v['peak'])} (range {md_text(v['range'])})",
        f"- Usable memory: {md_text(v['budget'])} of {md_text(v['memory'])}",
        f"- Certainty: {md_text(v['certainty_text'])}",
        *([f"- Measured: {md_text(v['measured'])}"] if v.get("measured") else []),
    ]
    if v["required_note"]:
        out.append(f"- Peak vs need: {md_text(v['required_note'])}")
    if v["spread"]:
        out.append(f"- Spread by device_map='auto': {md_text(v['spread'])}")
    if v["host_note"]:
        out.append(f"- {md_text(v['host_note'])}")
    out += ["", "## Memory breakdown", "", md_table(["Part", "Bytes"], ctx["breakdown_rows"], right=(1,)),
            "", _kv(ctx["fit_rows"], "Against the target")]
    out += ["", "## Model", "", _kv(ctx["model_rows"])]
    if ctx["inputs"]:
        out += ["", "### Inputs", "",
                md_table(["Name", "Type", "Shape"], [(s["name"], s["dtype"], s["shape"]) for s in ctx["inputs"]])]
    if ctx["outputs"]:
        out += ["", "### Outputs", "",
                md_table(["Name", "Type", "Shape"], [(s["name"], s["dtype"], s["shape"]) for s in ctx["outputs"]])]
    if ctx["metadata_rows"]:
        out += ["", "### Metadata", "", md_table(["Key", "Value"], ctx["metadata_rows"])]
    out += ["", f"## Target: {md_text(ctx['target_name'])}", "", _kv(ctx["target_rows"])]
    out += ["", "## Workload and runtime", "", _kv(ctx["workload_rows"])]
    out += _plan_md(ctx["plan"])
    if ctx["assumptions"]:
        out += ["", "## Assumptions", ""] + [f"- {md_text(n)}" for n in ctx["assumptions"]]
    return "\n".join(out) + "\n"


def _plan_md(plan: dict[str, Any]) -> list[str]:
    out = ["", "## Plan", "", md_text(plan["summary"])]
    options = plan["options"]
    if not options:
        return [*out, "", "No options."]
    rows = [(o["index"], o["kind"], o["title"], o["fits_text"], o["required"], o["peak"], o["headroom"], o["speed"],
             f"{o['risk']}: {o['risk_reason']}", o["price"]) for o in options]
    out += ["", md_table(["#", "Kind", "Option", "Fits", "Needs", "Peak", "Headroom", "Speed", "Risk", "Price"], rows,
                         right=(0, 4, 5, 6, 7))]
    out += ["", "### How to"]
    for o in options:
        out += ["", f"#### {o['index']}. {md_text(o['title'])}", "",
                f"{md_text(o['kind'])} · fits: {o['fits_text']} · {md_text(o['risk'])} risk — "
                f"{md_text(o['risk_reason'])}"]
        if o["detail"]:
            out += ["", md_text(o["detail"])]
        if o["speed_text"]:
            out += ["", md_text(o["speed_text"])]
        if o["how_to"]:
            out += ["", fenced(o["how_to"])]
    return out
