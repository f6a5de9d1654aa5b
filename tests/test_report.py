"""The audit report: results.json schema, Markdown structure, the HTML page (parsed, and opened
in headless Chromium when it is installed), and re-rendering a run directory."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

import mialab
import mialab.cli
from mialab.api import compare_defenses
from mialab.report import render_report, write_run
from mialab.report.document import SECTION_IDS
from mialab.report.markdown import escape
from mialab.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SMALL = dict(n_shadows=2, n_target_train=300, n_bootstrap=100,
             attacks=("threshold", "loss", "shadow", "label-only", "lira-offline"),
             training=TrainConfig(epochs=8))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small real audit with a one-candidate defense comparison, written as a run directory."""
    out = tmp_path_factory.mktemp("report-run")
    res = mialab.audit("digits", seed=1, quiet=True, **SMALL)
    comp = compare_defenses(["top-1", "l2"], config=mialab.AuditConfig.from_dict(res.config), baseline=res,
                            quiet=True)
    res.defense_comparison = comp.summary(max_utility_drop=0.05)
    write_run(res, out, comparison=comp)  # the candidates' runs under out/defenses/, as `mialab audit` writes them
    return out


def load(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


# -- an independent implementation of the page's number formats (the oracle) ---------------------
def expected_text(value, fmt: str) -> str:
    if fmt == "f2":
        return "%.2f" % value
    if fmt == "f3":
        return "%.3f" % value
    if fmt == "pct1":
        return "%.1f%%" % (value * 100)
    if fmt == "pctg":
        return ("%f" % (value * 100)).rstrip("0").rstrip(".") + "%"
    if fmt == "pts1":
        return "%.1f pts" % (value * 100)
    if fmt == "int":
        assert isinstance(value, int) and not isinstance(value, bool)
        return "{:,}".format(int(value))
    if fmt == "s1":
        return "%.1f s" % value
    if fmt == "g4":
        return "%.4g" % value
    if fmt == "text":
        assert isinstance(value, (str, int, float)) and not isinstance(value, bool)
        return str(value)
    if fmt == "json":
        return "none" if value is None else json.dumps(value, sort_keys=True)
    if fmt == "list":
        return ", ".join(map(str, value))
    if fmt == "member":
        return {True: "member", False: "non-member"}[value]
    if fmt == "yesno":
        return {True: "yes", False: "no"}[value]
    raise AssertionError(f"unknown format {fmt!r} on the page")


def at(doc, pointer: str):
    node = doc
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def check_numbers(tagged: list[tuple[str, str, str]], doc: dict) -> None:
    """Every tagged value equals results.json's value at its pointer, formatted."""
    assert len(tagged) > 100
    for key, fmt, text in tagged:
        assert text == expected_text(at(doc, key), fmt), (key, fmt, text)


def check_statics(statics: list[str]) -> None:
    """Literal text marked static may hold no measurement: the only number allowed is chance, 0.5."""
    for text in statics:
        assert set(re.findall(r"\d+(?:[.,]\d+)*", text)) <= {"0.5"}, text


def check_structure(page: "_Page", doc: dict) -> None:
    """Numbers sit where their meaning says: each results row reads its own attack, the verdict
    the worst case, each comparison row its own candidate."""
    keys = [k for k, _, _ in page.tagged]
    w = doc["worst_case"]["attack"]
    assert keys[:3] == ["/versions/mialab", "/worst_case/attack", f"/attacks/{w}/auc"]
    for a in doc["attacks"]:
        i = keys.index(f"/attacks/{a}/attack")
        assert keys[i + 1:i + 4] == [f"/attacks/{a}/auc", f"/attacks/{a}/auc_interval/0", f"/attacks/{a}/auc_interval/1"]
        assert keys[i + 4] == f"/attacks/{a}/accuracy" and keys[i + 7] == f"/attacks/{a}/precision"
    for j, row in enumerate((doc.get("defense_comparison") or {}).get("rows", [])):
        i = keys.index(f"/defense_comparison/rows/{j}/candidate")
        assert keys[i + 1] == f"/defense_comparison/rows/{j}/test_accuracy"
        assert all(k.startswith(f"/defense_comparison/rows/{j}/") for k in keys[i:i + 9])
    exposed = [k for k in keys if k.startswith(f"/most_exposed/{w}/")]
    assert len(exposed) == 5 * len(doc["most_exposed"][w])


class _Page(HTMLParser):
    """Collects tagged numbers, section ids, external references and untagged digits."""

    SKIP = {"svg", "th", "caption", "h1", "h2", "title", "style", "figcaption", "nav"}

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, dict]] = []
        self.tagged: list[list[str]] = []
        self.sections: list[str] = []
        self.refs: list[str] = []
        self.tags: set[str] = set()
        self.untagged_digits: list[str] = []
        self.statics: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        for k in ("src", "href", "xlink:href", "action", "data"):
            if a.get(k) and not a[k].startswith("#"):
                self.refs.append(a[k])
        if tag == "section":
            self.sections.append(a.get("id"))
        if "data-key" in a:
            self.tagged.append([a["data-key"], a["data-format"], ""])
        if tag not in ("meta", "br", "img", "input", "link", "hr") and not (tag in self.SVG_VOID and self._in("svg")):
            self.stack.append((tag, a))

    SVG_VOID = {"path", "use", "rect", "circle", "line", "polyline", "polygon", "stop", "ellipse"}

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        for k in ("src", "href", "xlink:href"):
            if a.get(k) and not a[k].startswith("#"):
                self.refs.append(a[k])

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def _in(self, tag: str) -> bool:
        return any(t == tag for t, _ in self.stack)

    def handle_data(self, data):
        inside_num = any("data-key" in a for _, a in self.stack)
        if inside_num:
            self.tagged[-1][2] += data
            return
        if any("static" in a.get("class", "") for _, a in self.stack):
            self.statics.append(data)
            return
        if any(t in self.SKIP for t, _ in self.stack):
            return
        if re.search(r"\d", data):
            self.untagged_digits.append(data)


# -- results.json ------------------------------------------------------------------------------------
def test_results_json_has_the_documented_keys_and_types(run_dir):
    doc = load(run_dir)
    assert set(doc) == {"schema_version", "config", "dataset", "split_sizes", "target", "shadows",
                        "reference_models", "attacks", "most_exposed", "attack_params", "worst_case",
                        "distributions", "timings", "model_counts", "versions", "hardware", "execution",
                        "defense_comparison",
                        "warnings", "verdict", "privacy_gate"}
    readme = (ROOT / "README.md").read_text()
    for key in doc:
        assert f"`{key}`" in readme, f"results.json key {key!r} is not documented in README.md"
    assert doc["schema_version"] == 1
    for name, m in doc["attacks"].items():
        for k in ("auc", "accuracy", "precision", "recall", "advantage"):
            lo, hi = m["auc_interval"] if k == "auc" else m[f"{k}_interval"]
            assert lo <= m[k] <= hi, (name, k)
        assert [e["fpr"] for e in m["tpr_at_fpr"]] == [0.001, 0.01, 0.1]
        assert len(m["roc"]["fpr"]) == len(m["roc"]["tpr"])
    for key in ("confidence", "log10_loss", "attack_score"):
        h = doc["distributions"][key]
        assert len(h["edges"]) == len(h["members"]) + 1 == len(h["nonmembers"]) + 1
        assert sum(h["members"]) == h["n_members"] == doc["attacks"]["loss"]["n_members"]
        assert sum(h["nonmembers"]) == h["n_nonmembers"] == doc["attacks"]["loss"]["n_nonmembers"]
    assert doc["distributions"]["attack_score"]["attack"] == doc["worst_case"]["attack"]
    assert set(doc["hardware"]) == {"cpu", "cpu_flags", "torch_cpu_capability", "logical_cores", "torch_threads",
                                    "device"}
    comp = doc["defense_comparison"]
    assert [r["candidate"] for r in comp["rows"]] == ["none", "top-1", "l2"]
    assert set(comp["pareto_front"]) <= {"none", "top-1", "l2"} and comp["pareto_front"]
    assert set(comp["recommendation"]) == {"max_utility_drop", "target_auc", "verdict", "ranked", "rule"}
    # the top-1 mask keeps every label, so its label-only attack sees exactly what the baseline's did
    assert comp["rows"][1]["attacks"]["label-only"]["auc"] == comp["rows"][0]["attacks"]["label-only"]["auc"]
    json.dumps(doc, allow_nan=False)


# -- Markdown -----------------------------------------------------------------------------------------
def test_markdown_has_every_section_consistent_tables_and_the_verdict(run_dir):
    doc = load(run_dir)
    md = (run_dir / "report.md").read_text()
    titles = re.findall(r"^## (.+)$", md, flags=re.M)
    assert titles == ["Verdict", "Results", "ROC curves", "Confidence distributions", "Defense comparison",
                      "Recommended defenses", "Most exposed records", "Configuration", "What this audit does not show"]
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            width = lines[i - 1].count(" | ") + 1
            j = i + 1
            while j < len(lines) and lines[j].startswith("| "):
                cells = re.split(r"(?<!\\)\|", lines[j])[1:-1]
                assert len(cells) == width, lines[j]
                j += 1
            assert j > i + 1, f"empty table after line {i}"
    w = doc["worst_case"]["attack"]
    lo, hi = doc["attacks"][w]["auc_interval"]
    # values are escaped in Markdown (brackets would otherwise start a link)
    assert escape(f"Worst-case attack: {w}, AUC {doc['attacks'][w]['auc']:.3f} [{lo:.3f}, {hi:.3f}]") in md
    for png in ("roc.png", "distributions.png", "tradeoff.png"):
        assert f"]({png})" in md and (run_dir / png).is_file()
    assert escape(doc["defense_comparison"]["recommendation"]["verdict"]) in md


# -- HTML, parsed ---------------------------------------------------------------------------------------
def test_html_numbers_equal_results_json_and_nothing_is_external(run_dir):
    doc = load(run_dir)
    text = (run_dir / "report.html").read_text()
    page = _Page()
    page.feed(text)
    assert page.sections == list(SECTION_IDS)
    check_numbers([tuple(t) for t in page.tagged], doc)
    check_structure(page, doc)
    assert page.untagged_digits == [], "numbers on the page that are not read from results.json"
    check_statics(page.statics)
    assert page.refs == []
    assert not {"script", "link", "iframe", "img", "object", "embed"} & page.tags
    assert re.findall(r"url\((?!#)", text) == []  # only references inside the page (SVG clip paths)
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "duplicate element ids (several inline SVGs would clash)"
    assert "@import" not in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "").replace('xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    assert text.count("<svg") == 3  # ROC, distributions, trade-off
    # never the raw features of a record: the exposed-records table has ids, labels, scores only
    exposed = text[text.index('id="exposed"'):text.index('id="configuration"')]
    assert exposed.count("<tr>") == 1 + len(doc["most_exposed"][doc["worst_case"]["attack"]])


def test_report_command_rerenders_without_recomputing(run_dir, tmp_path, monkeypatch):
    import sys

    import mialab.api

    def forbidden(*args, **kwargs):
        raise AssertionError("mialab report must not train or attack")

    for name in ("run_audit", "train_target", "train_shadows", "attack_all"):
        monkeypatch.setattr(sys.modules["mialab.pipeline.compose"], name, forbidden)
    monkeypatch.setattr(sys.modules["mialab.comparison"], "run_audit", forbidden)
    for name in ("run_audit", "run_model_audit", "run_comparison"):
        monkeypatch.setattr(sys.modules["mialab.api"], name, forbidden)
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    (copy / "report.html").unlink()
    (copy / "report.md").unlink()
    assert mialab.cli.main(["report", str(copy)]) == 0
    after = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    assert after == before  # byte for byte the same page; nothing else touched
    assert mialab.cli.main(["report", str(tmp_path / "nowhere")]) == 2
    (copy / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        render_report(copy)


def test_a_run_without_comparison_still_has_every_section(tmp_path):
    res = mialab.audit("digits", seed=2, quiet=True, **{**SMALL, "attacks": ("loss", "threshold")})
    write_run(res, tmp_path)
    page = _Page()
    page.feed((tmp_path / "report.html").read_text())
    assert page.sections == list(SECTION_IDS)
    assert "No defenses were compared" in (tmp_path / "report.md").read_text()
    check_numbers([tuple(t) for t in page.tagged], load(tmp_path))


def test_baseline_must_match_the_comparison(run_dir):
    res = mialab.audit("digits", seed=1, quiet=True, **{**SMALL, "attacks": ("loss", "label-only")})
    with pytest.raises(ValueError, match="different configuration"):
        compare_defenses(["top-1"], config=mialab.AuditConfig.from_dict(res.config).replace(seed=5),
                         baseline=res, quiet=True)


# -- the page in a real browser ------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


_JS_COLLECT = """() => {
  const tagged = [...document.querySelectorAll('[data-key]')].map(e => [e.dataset.key, e.dataset.format, e.textContent]);
  const sections = [...document.querySelectorAll('main > section')].map(s => [s.id, s.querySelector('h2').textContent,
      s.innerText.trim().length]);
  const skip = 'svg, [data-key], th, caption, h1, h2, title, style, figcaption, nav, .static';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const loose = [];
  while (walker.nextNode()) {
    const n = walker.currentNode;
    if (/\\d/.test(n.textContent) && !n.parentElement.closest(skip)) loose.push(n.textContent);
  }
  const svgs = [...document.querySelectorAll('figure svg')].map(s => s.getBoundingClientRect().width);
  const statics = [...document.querySelectorAll('.static')].map(e => e.textContent);
  return {tagged, sections, loose, svgs, statics};
}"""


def _unavailable(reason: str):
    if os.environ.get("MIALAB_REQUIRE_CHROMIUM"):  # set by .ci/run: in CI this test must run
        pytest.fail(f"MIALAB_REQUIRE_CHROMIUM is set but {reason}")
    pytest.skip(reason)


def test_report_in_headless_chromium(run_dir):
    browser_path = _chromium()
    if browser_path is None:
        _unavailable("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]' installs it)")
    doc = load(run_dir)
    console, requests, failures = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failures.append(r.url))
            url = (run_dir / "report.html").resolve().as_uri()
            page.goto(url, wait_until="load")
            found = page.evaluate(_JS_COLLECT)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            pdf = page.pdf(format="A4")  # it prints: a PDF renders without error
            page.emulate_media(media="print")  # and on an A4 page's width no table spills over
            page.set_viewport_size({"width": 700, "height": 1000})
            widths = page.evaluate("() => [document.body.clientWidth, "
                                   "...[...document.querySelectorAll('table')].map(t => t.scrollWidth)]")
        finally:
            browser.close()
    assert [c for c in console if c[0] in ("error", "pageerror", "warning")] == []
    assert requests == [url] and failures == []  # the page itself and nothing else
    assert [s[0] for s in found["sections"]] == list(SECTION_IDS)
    assert all(length > 40 for _, _, length in found["sections"])  # every section has content
    check_numbers([tuple(t) for t in found["tagged"]], doc)
    assert found["loose"] == []
    assert len(found["svgs"]) == 3 and all(w > 300 for w in found["svgs"])
    check_statics(found["statics"])
    assert pdf[:4] == b"%PDF" and len(pdf) > 10_000
    assert max(widths[1:]) <= widths[0], widths
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000


def _render(doc: dict, tmp_path: Path, run_dir: Path) -> str:
    """The Markdown report of ``doc``, rendered in a copy of the complete run directory."""
    d = tmp_path / "r"
    shutil.copytree(run_dir, d, dirs_exist_ok=True)
    (d / "results.json").write_text(json.dumps(doc))
    render_report(d)
    return (d / "report.md").read_text()


def test_verdict_restates_the_corrected_call_and_never_judges_on_its_own(run_dir, tmp_path):
    """The page says "leaks" exactly when results.json's corrected verdict does, whatever each
    attack's own interval says (one attack above chance is not a leak once the choice among
    several is accounted for)."""
    doc = load(run_dir)
    for m in doc["attacks"].values():
        m["auc_interval"] = [0.51, max(m["auc_interval"][1], 0.52)]  # every own interval above chance
    doc["verdict"]["leaks"] = False
    doc["verdict"]["leaking_attacks"] = []
    doc["verdict"]["auc"]["corrected"] = [0.49, 0.7]
    md = _render(doc, tmp_path, run_dir)
    assert "No leak is detectable at this sample size" in md and "Membership leaks" not in md
    assert "interval is \\[0.490, 0.700\\]" in md  # Markdown escapes brackets
    doc["verdict"]["leaks"] = True
    doc["verdict"]["leaking_attacks"] = ["loss"]
    doc["verdict"]["auc"]["corrected"] = [0.51, 0.7]
    md = _render(doc, tmp_path, run_dir)
    assert "Membership leaks: corrected for picking the highest of 5 attacks" in md
    assert "simultaneous interval lies above chance: loss." in md and "No leak is detectable" not in md


def test_a_run_without_a_verdict_says_so(run_dir, tmp_path):
    doc = load(run_dir)
    del doc["verdict"]
    md = _render(doc, tmp_path, run_dir)
    assert "predates the corrected verdict" in md and "Membership leaks" not in md


def test_lowest_fpr_target_is_used_whatever_their_order(run_dir, tmp_path):
    doc = load(run_dir)
    for m in doc["attacks"].values():
        m["tpr_at_fpr"] = m["tpr_at_fpr"][::-1]
    doc["config"]["fpr_targets"] = doc["config"]["fpr_targets"][::-1]
    md = _render(doc, tmp_path, run_dir)
    limits = md[md.index("## What this audit does not show"):]
    assert "TPR at 0.1% FPR needs at least 10,000 non-members (resolved here: no)" in limits


def test_comparison_with_other_fpr_targets(tmp_path):
    res = mialab.audit("digits", seed=3, quiet=True, fpr_targets=(0.05, 0.2),
                       **{**SMALL, "attacks": ("loss", "label-only")})
    comp = compare_defenses(["top-1"], config=mialab.AuditConfig.from_dict(res.config), baseline=res, quiet=True)
    assert all(r["worst_tpr_at_1pct"] is None for r in comp.rows)
    res.defense_comparison = comp.summary()
    write_run(res, tmp_path)
    page = _Page()
    page.feed((tmp_path / "report.html").read_text())
    check_numbers([tuple(t) for t in page.tagged], load(tmp_path))
    assert page.untagged_digits == []
