"""The audit pipeline, in the order it runs: the threat model (:mod:`~mialab.pipeline.threat`:
membership designs, attacker-side checks), the composition (:mod:`~mialab.pipeline.compose`:
split, training, outputs, :func:`~mialab.pipeline.compose.run_audit`), the attack runner
(:mod:`~mialab.pipeline.runner`), provenance (:mod:`~mialab.pipeline.provenance`) and the audit
of a user's own model (:mod:`~mialab.pipeline.own_model`). Nothing here writes a run directory:
that is :mod:`mialab.api` (``out=``) and the CLI.
"""
