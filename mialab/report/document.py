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
    blocks: list[Any] = [Para(["Warning: ", d.n("text", "warnings", i)], cls="warning")
                         for i in range(len(doc.get("warnings") or ()))]
    blocks.append(Para(parts, cls="verdict"))
    if doc.get("verdict"):
        blocks += _corrected_verdict(d)
    else:
        blocks.append(Para(["This run directory predates the corrected verdict (intervals that account for "
                            "picking the worst of several attacks); re-run the audit to get it. The worst case "
                            "above is the highest AUC of ", d.n("int", "worst_case", "selected_among"),
                            " attacks and its interval ignores that choice."], cls="note"))
    if doc.get("privacy_gate"):
        blocks += _gate(d)
    if doc.get("defense_comparison"):
        blocks.append(Para(["Defenses: ", d.n("text", "defense_comparison", "recommendation", "verdict")]))
    return Section("verdict", "Verdict", blocks)


def _corrected_verdict(d: _Doc) -> list[Any]:
    """The judgement, read from ``results.json["verdict"]`` (:func:`mialab.metrics.verdict.leak_verdict`):
    the report restates it, it judges nothing itself."""
    v = d.doc["verdict"]
    corrected: list[Part] = [" [", d.n("f3", "verdict", "auc", "corrected", 0), ", ",
                             d.n("f3", "verdict", "auc", "corrected", 1), "]"]
    among = [d.n("int", "verdict", "n_attacks"), " attacks"]
    if v["leaks"]:
        judgement: list[Part] = (["Membership leaks: corrected for picking the highest of "] + among
                                 + [", the worst-case AUC's ", d.n("pctg", "verdict", "level"), " interval is"]
                                 + corrected + [", entirely above chance (", Static("0.5"), ")."])
        if v["leaking_attacks"]:
            judgement += [" Attacks whose own simultaneous interval lies above chance: "] + _join(
                [[d.n("text", "verdict", "leaking_attacks", j)] for j in range(len(v["leaking_attacks"]))]) + ["."]
    else:
        judgement = (["No leak is detectable at this sample size: corrected for picking the highest of "] + among
                     + [", the worst-case AUC's ", d.n("pctg", "verdict", "level"), " interval is"] + corrected
                     + [", which does not lie above chance (", Static("0.5"), "). That is not proof of privacy: "
                        "see what this audit does not show."])
    blocks: list[Any] = [Para(judgement)]
    resolved = [j for j, e in enumerate(v["tpr_at_fpr"]) if e["resolvable"]]
    if resolved:
        j = min(resolved, key=lambda k: v["tpr_at_fpr"][k]["fpr"])
        fam = ("verdict", "tpr_at_fpr", j, "family")
        blocks.append(Para(["Highest TPR at ", d.n("pctg", "verdict", "tpr_at_fpr", j, "fpr"), " FPR over all attacks: ",
                            d.n("pct1", *fam, "worst_estimate"), " (", d.n("text", *fam, "worst"),
                            "), corrected interval [", d.n("pct1", *fam, "corrected", 0), ", ",
                            d.n("pct1", *fam, "corrected", 1), "]."]))
    blocks.append(Para(["How the correction works: one bootstrap draw of the evaluated records serves every attack, "
                        "and the intervals are widened until all ", d.n("int", "verdict", "n_attacks"),
                        " hold together in ", d.n("pctg", "verdict", "level"), " of the draws (each attack at its "
                        "own level ", d.n("pct1", "verdict", "auc", "marginal_level"), "); the maximum over attacks "
                        "then lies between the largest lower and the largest upper bound. \"Leaks\" is called only "
                        "when that corrected lower bound exceeds chance, so running more attacks does not make a "
                        "leak more likely to be reported by luck."], cls="note"))
    return blocks


def _gate(d: _Doc) -> list[Any]:
    g = d.doc["privacy_gate"]
    items = [[d.n("text", "privacy_gate", "budgets", j, "message")] for j in range(len(g["budgets"]))]
    return [Para(["Privacy budgets (--fail-if): ", d.n("text", "privacy_gate", "summary"), "."]),
            Items(items)]


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
    if doc.get("execution"):
        row("shadow/reference training", *_join([[f"{k.removesuffix('_s').replace('_', ' ')} ",
                                                   d.n("s1" if k.endswith("_s") else "text", "execution", k)]
                                                  for k in doc["execution"]]))
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
                if e["resolvable"]:
                    c: list[Part] = [d.n("pct1", "attacks", a, "tpr_at_fpr", i, "tpr"), " [",
                                     d.n("pct1", "attacks", a, "tpr_at_fpr", i, "interval", 0), ", ",
                                     d.n("pct1", "attacks", a, "tpr_at_fpr", i, "interval", 1), "]"]
                else:  # too few non-members for a number: only the exact upper bound is shown
                    c = ["≤ ", d.n("pct1", "attacks", a, "tpr_at_fpr", i, "interval", 1), " *"]
                    unresolved = True
                cells.append(c)
            rows.append(cells)
        blocks.append(Table(header, rows, caption="Attacks on the target"))
        w = doc["worst_case"]["attack"]
        notes: list[Part] = ["Evaluated: ", d.n("int", "attacks", w, "n_members"), " members and ",
                             d.n("int", "attacks", w, "n_nonmembers"),
                             " non-members. Accuracy, precision, recall and advantage (TPR - FPR) use each attack's "
                             "own threshold, chosen on attacker-side data. Intervals: stratified bootstrap, ",
                             d.n("int", "config", "n_bootstrap"), " replicates. TPR at an FPR is the largest TPR "
                             "among ROC points whose FPR lies strictly below it (the LiRA convention); the FPR it "
                             "attains is in results.json."]
        blocks.append(Para(notes, cls="note"))
        if unresolved:
            e = _lowest_fpr_entry(d, w)
            blocks.append(Para(["* Not resolvable: fewer than ten over the FPR non-members (TPR at ",
                                _fpr_label(d, w, e), " FPR needs at least ",
                                d.n("int", "attacks", w, "tpr_at_fpr", e, "min_nonmembers"),
                                "), too few for an unbiased number; shown is an upper bound that holds at the ",
                                d.n("pctg", "attacks", w, "bootstrap", "level"),
                                " level at any sample size (exact order-statistic and Clopper-Pearson bounds)."],
                               cls="note"))
        blocks += _ppv_table(d, attacks)
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


def _ppv_table(d: _Doc, attacks: list[str]) -> list[Any]:
    """Precision (PPV) of each attack's own threshold at the membership priors of results.json."""
    entries = d.doc["attacks"][attacks[0]].get("ppv") or []
    if not entries:
        return []
    header = ["attack"] + [f"PPV if {100 * e['prior']:g}% of those queried are members" for e in entries]
    rows = []
    for a in attacks:
        cells: list[list[Part]] = [[d.n("text", "attacks", a, "attack")]]
        for i, e in enumerate(d.doc["attacks"][a]["ppv"]):
            lo_hi: list[Part] = ["[", d.n("pct1", "attacks", a, "ppv", i, "interval", 0), ", ",
                                 d.n("pct1", "attacks", a, "ppv", i, "interval", 1), "]"]
            cells.append(["flags no one ", *lo_hi] if e["ppv"] is None
                         else [d.n("pct1", "attacks", a, "ppv", i, "ppv"), " ", *lo_hi])
        rows.append(cells)
    note = Para(["Precision at realistic membership rates: of the people an attack flags (at its own threshold), "
                 "the share who really are members, if members were that fraction of everyone queried; from the "
                 "attack's TPR and FPR by Bayes' rule. The audit's own records are half members, so its precision "
                 "is the first column; a privacy impact assessment needs the others. Intervals: exact "
                 "(Clopper-Pearson bounds on TPR and FPR, combined)."], cls="note")
    return [Table(header, rows, caption="Precision at a membership prior"), note]


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
    corrected = any(r.get("worst_auc_corrected_interval") for r in comp["rows"])
    header = ["candidate", "test accuracy", "utility cost", "worst attack (highest AUC)",
              "its AUC [95% CI, corrected for the choice]" if corrected else "its AUC [95% CI]",
              "AUC cut vs none [paired 95% CI]", "highest attack accuracy (any attack)",
              "highest TPR at 1% FPR (any attack)", "label-only AUC", "effectiveness", "epsilon", "Pareto front"]
    rows = []
    for i, r in enumerate(comp["rows"]):
        p = ("defense_comparison", "rows", i)
        key = "worst_auc_corrected_interval" if r.get("worst_auc_corrected_interval") else "worst_auc_interval"
        cut: list[Part] = (["—"] if r.get("auc_reduction_interval") is None else
                           [d.n("f3", *p, "auc_reduction"), " [", d.n("f3", *p, "auc_reduction_interval", 0), ", ",
                            d.n("f3", *p, "auc_reduction_interval", 1), "]",
                            " works" if r.get("defense_works") else " within noise"])
        cells: list[list[Part]] = [
            [d.n("text", *p, "candidate")], [d.n("pct1", *p, "test_accuracy")], [d.n("pts1", *p, "utility_cost")],
            [d.n("text", *p, "worst_attack")],
            [d.n("f3", *p, "worst_auc"), " [", d.n("f3", *p, key, 0), ", ", d.n("f3", *p, key, 1), "]"],
            cut,
            [d.n("pct1", *p, "worst_accuracy")],
            (["—"] if r.get("worst_tpr_at_1pct") is None else
             ["≤ ", d.n("pct1", *p, "worst_tpr_at_1pct_bound"), " *"]
             if r.get("tpr_at_1pct_resolvable") is False and r.get("worst_tpr_at_1pct_bound") is not None
             else [d.n("pct1", *p, "worst_tpr_at_1pct")]),
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
                            " non-members (a TPR at an FPR needs ten over the FPR of them): shown is the largest exact upper bound "
                            "over the attacks."], cls="note"))
    blocks += [
        Para(["Utility cost: drop in test accuracy against the undefended model (none). ",
              Static("Effectiveness: the share of the undefended worst-case advantage (AUC - 0.5) the defense "
                     "removes."),
              " The label-only attack always runs, so an output mask is never credited with hiding labels."
              " AUC cut: the undefended worst-case AUC minus the candidate's, on the same evaluated records"
              " resampled together (paired), its interval holding for all candidates at once; a defense"
              " \"works\" only when that interval lies above zero."],
             cls="note"),
        Figure("tradeoff", "Utility-privacy trade-off: worst-case AUC (with its interval) and TPR at 1% FPR against "
               "test accuracy; the dashed line joins the Pareto front.", "tradeoff.png")]
    rec = comp["recommendation"]
    rblocks: list[Any] = [Para([d.n("text", "defense_comparison", "recommendation", "verdict")], cls="verdict")]
    cons: list[Part] = ["Constraints: utility drop at most ",
                        d.n("pts1", "defense_comparison", "recommendation", "max_utility_drop")]
    if rec.get("target_auc") is not None:
        cons += [", worst-case AUC at most ", d.n("f3", "defense_comparison", "recommendation", "target_auc")]
    rblocks.append(Para(cons + [". Candidates whose AUC cut is beyond noise (paired interval above zero) come first; "
                                "within each group, ranked by privacy gain (worst-case AUC removed) per point of test "
                                "accuracy lost. Only a candidate beyond noise is recommended."], cls="note"))
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
            cut = r.get("auc_reduction")
            if cut is None:  # a comparison from before paired reductions
                cut = comp["rows"][0]["worst_auc"] - r["worst_auc"]
            why = ("it did not lower the worst-case AUC" if cut <= 0 else
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
                      " non-members no FPR below one in that many can be measured, and a TPR at a low FPR is "
                      "shown as a number only when about ten false positives lie below it (ten over the FPR "
                      "non-members; fewer give a biased number and intervals that undercover, so only an upper "
                      "bound is shown); TPR at ", _fpr_label(d, w, e), " FPR needs at least ",
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
    items.append(["The worst case's point estimate is the highest of several attacks, picked after the fact, so it "
                  "is biased upward (the verdict's corrected interval accounts for the choice, the point estimate "
                  "does not); the intervals cover resampling of the evaluated records only, not retraining the "
                  "target with another seed or another split."])
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
