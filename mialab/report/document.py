"""The content of an audit report, built from ``results.json`` alone, rendered to HTML or Markdown.

A report is a list of :class:`Section` s made of small blocks (paragraphs, tables, bullet
lists, figures). Every measured number on the page is a :class:`Num`: a JSON pointer into
``results.json`` (RFC 6901) and a named format, so the page shows exactly what the run
measured, nothing computed on the side, and a test can check each number against the file.
Literal text that happens to contain digits ("95% CI", "TPR at 0.1% FPR") is marked
:class:`Static`, so nothing numeric slips onto the page untraced.

The renderers (:mod:`mialab.report.html`, :mod:`mialab.report.markdown`) only lay the blocks out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = ["FORMATS", "Num", "Static", "Para", "Table", "Items", "Figure", "Section", "build", "resolve",
           "pointer", "SECTION_IDS"]


def _fmt_int(v: Any) -> str:
    return f"{int(v):,}"


#: named formats; the report test re-implements them independently
FORMATS: dict[str, Any] = {
    "f2": lambda v: f"{v:.2f}",
    "f3": lambda v: f"{v:.3f}",
    "pct1": lambda v: f"{100 * v:.1f}%",
    "pctg": lambda v: f"{100 * v:g}%",
    "pts1": lambda v: f"{100 * v:.1f} pts",
    "int": _fmt_int,
    "s1": lambda v: f"{v:.1f} s",
    "g4": lambda v: f"{v:.4g}",
    "text": lambda v: str(v),
    "json": lambda v: "none" if v is None else json.dumps(v, sort_keys=True),
    "list": lambda v: ", ".join(str(x) for x in v),
    "member": lambda v: "member" if v else "non-member",
    "yesno": lambda v: "yes" if v else "no",
}


def pointer(*parts: Any) -> str:
    """RFC 6901 JSON pointer from path parts: ``pointer("attacks", "loss", "auc")``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(doc: Any, ptr: str) -> Any:
    """The value at JSON pointer ``ptr`` in ``doc`` (``KeyError`` naming the pointer if absent)."""
    node = doc
    for raw in ptr.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(f"results.json has no value at {ptr!r}") from None
    return node


@dataclass(frozen=True)
class Num:
    """A value from ``results.json``: pointer, format, and the text shown."""

    key: str
    value: Any
    fmt: str

    @property
    def text(self) -> str:
        return FORMATS[self.fmt](self.value)


@dataclass(frozen=True)
class Static:
    """Literal text with digits in it that is not a measurement ("95% CI")."""

    text: str


Part = Union[str, Num, Static]


@dataclass(frozen=True)
class Para:
    parts: list[Part]
    cls: str = ""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[list[Part]]]
    caption: str = ""


@dataclass(frozen=True)
class Items:
    items: list[list[Part]]


@dataclass(frozen=True)
class Figure:
    """A figure drawn from ``results.json``: ``kind`` is ``roc``, ``distributions`` or ``tradeoff``;
    ``png`` the file of the run directory holding the same plot (for Markdown)."""

    kind: str
    caption: str
    png: str


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list[Any] = field(default_factory=list)


#: the sections every report has, in order
SECTION_IDS = ("verdict", "results", "roc", "distributions", "defenses", "recommendations", "exposed",
               "configuration", "limits")


class _Doc:
    """``results.json`` plus a constructor of :class:`Num` s that always reads from it."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc

    def n(self, fmt: str, *path: Any) -> Num:
        key = pointer(*path)
        return Num(key, resolve(self.doc, key), fmt)

    def has(self, *path: Any) -> bool:
        try:
            return resolve(self.doc, pointer(*path)) is not None
        except KeyError:
            return False

    def ci(self, fmt: str, *path: Any) -> list[Part]:
        """``value [low, high]`` for a value at ``path`` with its interval at ``path + "_interval"``."""
        *head, last = path
        return [self.n(fmt, *path), " [", self.n(fmt, *head, f"{last}_interval", 0), ", ",
                self.n(fmt, *head, f"{last}_interval", 1), "]"]


def _fpr_label(d: "_Doc", attack: str, i: int) -> Num:
    """The FPR target of entry ``i`` of ``attack`` (e.g. "0.1%")."""
    return d.n("pctg", "attacks", attack, "tpr_at_fpr", i, "fpr")


def _lowest_fpr_entry(d: "_Doc", attack: str) -> int:
    entries = d.doc["attacks"][attack]["tpr_at_fpr"]
    return min(range(len(entries)), key=lambda i: entries[i]["fpr"])


def _resolved_entry(d: _Doc, attack: str) -> int | None:
    """Index of the lowest resolvable FPR target of ``attack`` (None if none resolves)."""
    entries = d.doc["attacks"][attack]["tpr_at_fpr"]
    ok = [i for i, e in enumerate(entries) if e["resolvable"]]
    return min(ok, key=lambda i: entries[i]["fpr"]) if ok else None


# -- sections -------------------------------------------------------------------------------------
def _verdict(d: _Doc) -> Section:
    doc = d.doc
    if not doc.get("attacks"):
        return Section("verdict", "Verdict", [Para(["No attack was run, so nothing was measured."])])
    w = doc["worst_case"]["attack"]
    parts: list[Part] = ["Worst-case attack: ", d.n("text", "worst_case", "attack"), ", AUC ",
                         d.n("f3", "attacks", w, "auc"), " [", d.n("f3", "attacks", w, "auc_interval", 0), ", ",
                         d.n("f3", "attacks", w, "auc_interval", 1), "]"]
    i = _resolved_entry(d, w)
    if i is not None:
        parts += [", TPR ", d.n("pct1", "attacks", w, "tpr_at_fpr", i, "tpr"), " at ",
                  _fpr_label(d, w, i), " FPR on ",
                  d.n("int", "attacks", w, "tpr_at_fpr", i, "n_nonmembers"), " non-members"]
    else:
        parts += [" on ", d.n("int", "attacks", w, "n_nonmembers"), " non-members (too few to resolve any TPR at low FPR)"]
    parts.append(".")
    above = [a for a, m in doc["attacks"].items() if m["auc_interval"][0] > 0.5]
    level = ["the ", d.n("pctg", "attacks", w, "bootstrap", "level"), " interval"]
    if above:
        judgement: list[Part] = ["Membership leaks measurably: "] + _join(
            [[d.n("text", "attacks", a, "attack")] for a in above]) + [
            " tell members from non-members better than chance (each attack's own "] + level[1:] + [
            " lies above an AUC of ", Static("0.5"),
            "; with several attacks compared, one such interval can also exclude chance by luck, so weigh how far "
            "above it lies)."]
    else:
        judgement = ["No attack is distinguishable from chance at this sample size (every attack's "] + level[1:] + [
            " includes an AUC of ", Static("0.5"), "). That is not proof of privacy: see what this audit does not show."]
    blocks: list[Any] = [Para(["Warning: ", d.n("text", "warnings", i)], cls="warning")
                         for i in range(len(doc.get("warnings") or ()))]
    blocks += [Para(parts, cls="verdict"), Para(judgement)]
    first = ["The worst case is the highest AUC of ", d.n("int", "worst_case", "selected_among"),
             " attacks, picked after seeing the evaluated records, so it is biased upward; its interval "
             "does not account for that choice."]
    blocks.append(Para(first, cls="note"))
    if doc.get("defense_comparison"):
        blocks.append(Para(["Defenses: ", d.n("text", "defense_comparison", "recommendation", "verdict")]))
    return Section("verdict", "Verdict", blocks)


def _configuration(d: _Doc) -> Section:
    doc, cfg = d.doc, d.doc["config"]
    rows: list[list[list[Part]]] = []

    def row(label: str, *parts: Part) -> None:
        rows.append([[label], list(parts)])

    row("dataset", d.n("text", "dataset", "name"), " (", d.n("int", "dataset", "n_records"), " records, ",
        d.n("int", "dataset", "n_classes"), " classes, ", d.n("text", "dataset", "kind"), ")")
    sizes = doc["split_sizes"]
    row("split", *_join([[d.n("int", "split_sizes", k), f" {k.replace('_', ' ')}"] for k in sizes]))
    row("model", d.n("text", "config", "model"), " ", d.n("json", "config", "model_params"))
    if "model_form" in cfg:
        row("model form", d.n("text", "config", "model_form"), ", outputs ", d.n("text", "config", "model_output"))
    row("training recipe", d.n("json", "config", "training"))
    row("defenses (training)", d.n("json", "config", "defenses"))
    row("output mask", d.n("json", "config", "output_mask"))
    access = ([d.n("text", "config", "access")] if "access" in cfg else
              ["labels only (output mask)" if (cfg.get("output_mask") or {}).get("name") == "label-only" else
               "what the output mask releases" if cfg.get("output_mask") else "logits (no output mask)"])
    row("access level (what attacks see)", *access)
    row("threat model: shadow/reference models trained with the target's defense",
        d.n("text", "config", "shadow_defense"))
    row("attacks", d.n("list", "config", "attacks"))
    row("shadow models", d.n("int", "shadows", "n_models"))
    if doc.get("reference_models", {}).get("n_models"):
        row("reference models (online attacks)", d.n("int", "reference_models", "n_models"))
    row("root seed", d.n("int", "config", "seed"))
    if doc["target"].get("seed") is not None:
        row("target seed (derived)", d.n("text", "target", "seed"))
    row("bootstrap replicates", d.n("int", "config", "n_bootstrap"))
    if doc.get("versions"):
        row("versions", *_join([[f"{k.replace('_', ' ')} ", d.n("text", "versions", k)] for k in doc["versions"]]))
    if doc.get("hardware"):
        row("hardware", *_join([[f"{k.replace('_', ' ')} ", d.n("text", "hardware", k)] for k in doc["hardware"]]))
    if doc.get("model_counts"):
        row("models (this audit)", *_join([[f"{k.replace('_', ' ')} ", d.n("int", "model_counts", k)]
                                           for k in doc["model_counts"]]))
    if doc.get("timings"):
        row("timings", *_join([[f"{k.removesuffix('_s').replace('_', ' ')} ", d.n("s1", "timings", k)]
                               for k in doc["timings"]]))
    comp = doc.get("defense_comparison") or {}
    for k in ("candidate_models_trained", "candidate_models_loaded_from_cache"):
        if comp.get(k) is not None:
            row(f"defense comparison: {k.replace('_', ' ')}", d.n("int", "defense_comparison", k))
    return Section("configuration", "Configuration", [Table(["setting", "value"], rows)])


def _join(groups: list[list[Part]], sep: str = ", ") -> list[Part]:
    out: list[Part] = []
    for i, g in enumerate(groups):
        if i:
            out.append(sep)
        out += g
    return out


def _results(d: _Doc) -> Section:
    doc = d.doc
    blocks: list[Any] = []
    attacks = list(doc.get("attacks", {}))
    if attacks:
        fprs = [e["fpr"] for e in doc["attacks"][attacks[0]]["tpr_at_fpr"]]
        level = f"{100 * doc['attacks'][attacks[0]]['bootstrap']['level']:g}% CI"
        header = ["attack", f"AUC-ROC [{level}]", f"accuracy [{level}]", f"precision [{level}]",
                  f"recall [{level}]", f"advantage [{level}]"] + [f"TPR at {100 * f:g}% FPR [{level}]" for f in fprs]
        rows = []
        unresolved = False
        for a in attacks:
            m = doc["attacks"][a]
            cells: list[list[Part]] = [[d.n("text", "attacks", a, "attack")], d.ci("f3", "attacks", a, "auc")]
            for k in ("accuracy", "precision", "recall"):
                cells.append(d.ci("pct1", "attacks", a, k) if f"{k}_interval" in m else [d.n("pct1", "attacks", a, k)])
            cells.append(d.ci("f3", "attacks", a, "advantage") if "advantage_interval" in m
                         else [d.n("f3", "attacks", a, "advantage")])
            for i, e in enumerate(m["tpr_at_fpr"]):
                c: list[Part] = [d.n("pct1", "attacks", a, "tpr_at_fpr", i, "tpr"), " [",
                                 d.n("pct1", "attacks", a, "tpr_at_fpr", i, "interval", 0), ", ",
                                 d.n("pct1", "attacks", a, "tpr_at_fpr", i, "interval", 1), "]"]
                if not e["resolvable"]:
                    c.append(" *")
                    unresolved = True
                cells.append(c)
            rows.append(cells)
        blocks.append(Table(header, rows, caption="Attacks on the target"))
        w = doc["worst_case"]["attack"]
        notes: list[Part] = ["Evaluated: ", d.n("int", "attacks", w, "n_members"), " members and ",
                             d.n("int", "attacks", w, "n_nonmembers"),
                             " non-members. Accuracy, precision, recall and advantage (TPR - FPR) use each attack's "
                             "own threshold, chosen on attacker-side data. Intervals: stratified bootstrap, ",
                             d.n("int", "config", "n_bootstrap"), " replicates."]
        blocks.append(Para(notes, cls="note"))
        if unresolved:
            e = _lowest_fpr_entry(d, w)
            blocks.append(Para(["* Not resolvable: fewer non-members than one over the FPR (TPR at ",
                                _fpr_label(d, w, e), " FPR needs at least ",
                                d.n("int", "attacks", w, "tpr_at_fpr", e, "min_nonmembers"),
                                "), so the value is the TPR with no false positive at all."], cls="note"))
    t = doc["target"]
    urows = [[["target"], [d.n("pct1", "target", "train_accuracy")],
              [d.n("pct1", "target", "test_accuracy")] if t.get("test_accuracy") is not None else ["n/a"],
              [d.n("pts1", "target", "generalization_gap")] if t.get("generalization_gap") is not None else ["n/a"]]]
    sh = doc.get("shadows", {})
    if sh.get("n_models") and sh.get("mean_train_accuracy") is not None:
        urows.append([["shadow models (mean)"], [d.n("pct1", "shadows", "mean_train_accuracy")],
                      [d.n("pct1", "shadows", "mean_test_accuracy")] if sh.get("mean_test_accuracy") is not None
                      else ["n/a"], ["—"]])
    blocks.append(Table(["model", "train accuracy", "test accuracy", "generalization gap"], urows,
                        caption="Model utility"))
    if t.get("accuracy_note"):
        blocks.append(Para([d.n("text", "target", "accuracy_note")], cls="note"))
    return Section("results", "Results", blocks)


def _figures(d: _Doc) -> list[Section]:
    roc = Section("roc", "ROC curves", [Figure(
        "roc", "All attacks on one figure. Left: linear axes. Right: log-log axes, where the low-FPR regime "
        "that matters for privacy is visible; it starts at the smallest FPR the non-members can resolve.", "roc.png")])
    if d.doc.get("distributions"):
        blocks = [Figure("distributions", "Members vs non-members: the target's maximum released probability, its "
                         "loss, and the worst-case attack's own score.", "distributions.png")]
    else:
        blocks = [Para(["This run directory predates the distributions in results.json; re-run the audit to "
                        "get them."])]
    return [roc, Section("distributions", "Confidence distributions", blocks)]


def _defenses(d: _Doc) -> list[Section]:
    comp = d.doc.get("defense_comparison")
    if not comp:
        none = [Para(["No defenses were compared in this run. Run `mialab audit --defenses l2,top-1,...` or "
                      "`mialab defend` to re-attack defended models and get recommendations."])]
        return [Section("defenses", "Defense comparison", none), Section("recommendations", "Recommended defenses",
                                                                          list(none))]
    header = ["candidate", "test accuracy", "utility cost", "worst attack (highest AUC)", "its AUC [95% CI]",
              "highest attack accuracy (any attack)", "highest TPR at 1% FPR (any attack)", "label-only AUC",
              "effectiveness", "epsilon", "Pareto front"]
    rows = []
    for i, r in enumerate(comp["rows"]):
        p = ("defense_comparison", "rows", i)
        cells: list[list[Part]] = [
            [d.n("text", *p, "candidate")], [d.n("pct1", *p, "test_accuracy")], [d.n("pts1", *p, "utility_cost")],
            [d.n("text", *p, "worst_attack")],
            [d.n("f3", *p, "worst_auc"), " [", d.n("f3", *p, "worst_auc_interval", 0), ", ",
             d.n("f3", *p, "worst_auc_interval", 1), "]"],
            [d.n("pct1", *p, "worst_accuracy")],
            ([d.n("pct1", *p, "worst_tpr_at_1pct")] + ([" *"] if r.get("tpr_at_1pct_resolvable") is False else [])
             if r.get("worst_tpr_at_1pct") is not None else ["—"]),
            [d.n("f3", *p, "attacks", "label-only", "auc")] if "label-only" in r["attacks"] else ["—"],
            [d.n("pct1", *p, "effectiveness")] if r.get("effectiveness") is not None else ["—"],
            [d.n("f2", *p, "epsilon")] if r.get("epsilon") is not None else ["—"],
            ["yes" if r["candidate"] in comp.get("pareto_front", []) else "no"],
        ]
        rows.append(cells)
    blocks: list[Any] = [
        Table(header, rows, caption="Each candidate re-attacked with the same seed, split and attacks")]
    if any(r.get("tpr_at_1pct_resolvable") is False for r in comp["rows"]):
        blocks.append(Para(["* Not resolvable with ", d.n("int", "defense_comparison", "rows", 0, "n_nonmembers"),
                            " non-members: the value is the TPR with no false positive at all."], cls="note"))
    blocks += [
        Para(["Utility cost: drop in test accuracy against the undefended model (none). ",
              Static("Effectiveness: the share of the undefended worst-case advantage (AUC - 0.5) the defense "
                     "removes."),
              " The label-only attack always runs, so an output mask is never credited with hiding labels."],
             cls="note"),
        Figure("tradeoff", "Utility-privacy trade-off: worst-case AUC (with its interval) and TPR at 1% FPR against "
               "test accuracy; the dashed line joins the Pareto front.", "tradeoff.png")]
    rec = comp["recommendation"]
    rblocks: list[Any] = [Para([d.n("text", "defense_comparison", "recommendation", "verdict")], cls="verdict")]
    cons: list[Part] = ["Constraints: utility drop at most ",
                        d.n("pts1", "defense_comparison", "recommendation", "max_utility_drop")]
    if rec.get("target_auc") is not None:
        cons += [", worst-case AUC at most ", d.n("f3", "defense_comparison", "recommendation", "target_auc")]
    rblocks.append(Para(cons + [". Ranked by privacy gain (worst-case AUC removed) per point of test accuracy lost."],
                        cls="note"))
    if len(rec["ranked"]) > 1:
        rblocks.append(Para(["Also within the constraints, in order:"]))
        rblocks.append(Items([[d.n("text", "defense_comparison", "recommendation", "ranked", i, "reason")]
                              for i in range(1, len(rec["ranked"]))]))
    ranked = {x["candidate"] for x in rec["ranked"]}
    rejected = [i for i, r in enumerate(comp["rows"]) if r["candidate"] != "none" and r["candidate"] not in ranked]
    if rejected:
        rblocks.append(Para(["Not recommended:"]))
        items = []
        for i in rejected:
            r, p = comp["rows"][i], ("defense_comparison", "rows", i)
            why = ("it did not lower the worst-case AUC" if r["worst_auc"] >= comp["rows"][0]["worst_auc"] else
                   "it costs more utility than allowed" if r["utility_cost"] > rec["max_utility_drop"] else
                   "its worst-case AUC stays above the target")
            items.append([d.n("text", *p, "candidate"), ": worst-case AUC ",
                          d.n("f3", "defense_comparison", "rows", 0, "worst_auc"), " to ", d.n("f3", *p, "worst_auc"),
                          " [", d.n("f3", *p, "worst_auc_interval", 0), ", ", d.n("f3", *p, "worst_auc_interval", 1),
                          "], utility cost ", d.n("pts1", *p, "utility_cost"), ": " + why + "."])
        rblocks.append(Items(items))
    return [Section("defenses", "Defense comparison", blocks), Section("recommendations", "Recommended defenses",
                                                                       rblocks)]


def _exposed(d: _Doc) -> Section:
    doc = d.doc
    if not doc.get("attacks"):
        return Section("exposed", "Most exposed records", [Para(["No attack was run."])])
    w = doc["worst_case"]["attack"]
    rows = [[[d.n("int", "most_exposed", w, i, "rank")], [d.n("int", "most_exposed", w, i, "record_id")],
             [d.n("int", "most_exposed", w, i, "label")], [d.n("g4", "most_exposed", w, i, "score")],
             [d.n("member", "most_exposed", w, i, "is_member")]] for i in range(len(doc["most_exposed"][w]))]
    return Section("exposed", "Most exposed records", [
        Para(["The evaluated records the worst-case attack (", d.n("text", "worst_case", "attack"),
              ") scores highest, i.e. those it is most confident were trained on: record ids and labels only, never "
              "feature values. A true member here is a record an attacker can single out; a non-member here is a "
              "false alarm. Scores are on the attack's own scale. Other attacks' lists are in results.json "
              "(most_exposed)."]),
        Table(["rank", "record id", "label", "score", "truly"], rows)])


def _limits(d: _Doc) -> Section:
    doc = d.doc
    items: list[list[Part]] = []
    if doc.get("attacks"):
        w = doc["worst_case"]["attack"]
        e = _lowest_fpr_entry(d, w)
        items.append(["Finite non-members: with ", d.n("int", "attacks", w, "n_nonmembers"),
                      " non-members no FPR below one in that many can be measured; TPR at ",
                      _fpr_label(d, w, e), " FPR needs at least ",
                      d.n("int", "attacks", w, "tpr_at_fpr", e, "min_nonmembers"), " non-members",
                      " (resolved here: ", d.n("yesno", "attacks", w, "tpr_at_fpr", e, "resolvable"), ")."])
    items.append(["Attacks are lower bounds: a stronger attack, more reference models or more attacker knowledge "
                  "may extract more. A low AUC does not prove the model private; only a DP guarantee (epsilon) "
                  "bounds every attack."])
    cfg = doc["config"]
    threat = ("the attacker knows the training recipe and defense (Kerckhoffs) and draws shadow data from the "
              "same distribution" if cfg.get("shadow_defense", "same") == "same" else
              "the attacker does NOT know the defense: shadow models are trained without it")
    items.append(["Threat model assumed: " + threat + "; attacks see only what the model releases ("]
                 + (["access level ", d.n("text", "config", "access")] if "access" in cfg else
                    ["output mask: ", d.n("json", "config", "output_mask")]) + [")."])
    items.append(["The worst case is picked after the fact among several attacks, so it is biased upward; the "
                  "intervals cover resampling of the evaluated records only, not retraining the target with "
                  "another seed or another split."])
    if doc.get("defense_comparison"):
        items.append(["Defense comparison: each candidate was audited once, with one seed; effectiveness and "
                      "utility cost carry the same sampling noise as the AUCs they come from."])
    if "member_fraction" in cfg and "model_form" not in cfg:
        items.append(["The evaluated members are a sample (", d.n("pctg", "config", "member_fraction"),
                      ") of the target's training set; per-record exposure is estimated for the evaluated records only."])
    else:
        items.append(["The evaluated members are the known members supplied; per-record exposure is estimated for "
                      "the evaluated records only."])
    return Section("limits", "What this audit does not show", [Items(items)])


def build(doc: dict[str, Any]) -> list[Section]:
    """The report's sections, in :data:`SECTION_IDS` order, from a ``results.json`` dict."""
    d = _Doc(doc)
    roc, dist = _figures(d)
    defenses, recs = _defenses(d)
    sections = [_verdict(d), _results(d), roc, dist, defenses, recs, _exposed(d), _configuration(d), _limits(d)]
    assert tuple(s.id for s in sections) == SECTION_IDS
    return sections


def title(doc: dict[str, Any]) -> str:
    return f"mialab audit: {doc['dataset']['name']}, {doc['config'].get('model', 'model')}"
