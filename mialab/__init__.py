"""mialab: measure how much a model leaks about its training data.

>>> import mialab
>>> results = mialab.audit("digits", model="mlp", seed=0, out="runs/quickstart")  # doctest: +SKIP
>>> print(mialab.summary_table(results))  # doctest: +SKIP
"""

__version__ = "0.1.0"

from mialab.audit import audit  # noqa: E402
from mialab.comparison import compare_defenses, recommend  # noqa: E402
from mialab.config import AuditConfig  # noqa: E402
from mialab.data import Dataset, from_arrays, from_csv, load_dataset, make_split  # noqa: E402
from mialab.own_model import audit_model  # noqa: E402
from mialab.report import summary_table, write_run  # noqa: E402
from mialab.results import AuditResults  # noqa: E402
from mialab.training import TrainConfig  # noqa: E402

__all__ = [
    "__version__",
    "audit",
    "audit_model",
    "compare_defenses",
    "recommend",
    "AuditConfig",
    "AuditResults",
    "TrainConfig",
    "Dataset",
    "from_arrays",
    "from_csv",
    "load_dataset",
    "make_split",
    "summary_table",
    "write_run",
]
