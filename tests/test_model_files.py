"""Model and record files load safely; `mialab audit-model` audits them end to end."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
import torch

import mialab
from mialab.cli import main
from mialab.model_files import load_records, load_sklearn, load_torch_weights

EXECUTED = []


class Payload:
    """Unpickling this runs code: what a malicious model file would do."""

    def __reduce__(self):
        return (EXECUTED.append, ("pwned",))


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from mialab.pipeline.threat import audit_split

    data = mialab.load_dataset("digits")
    split = audit_split(data, mialab.AuditConfig())
    path = tmp_path_factory.mktemp("records") / "digits.npz"
    X, y = data.X, data.y
    np.savez(path, members_X=X[split.members], members_y=y[split.members], nonmembers_X=X[split.nonmembers],
             nonmembers_y=y[split.nonmembers], population_X=X[split.pool], population_y=y[split.pool])
    return dict(path=path, train=(X[split.target_train], y[split.target_train]))


def test_torch_weights_load_with_weights_only_and_refuse_code(tmp_path):
    model = mialab.models.build_model("mlp", input_shape=(64,), n_classes=10, width=32)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    loaded = load_torch_weights(tmp_path / "w.pt", arch="mlp", input_shape=(64,), n_classes=10,
                                model_params={"width": 32})
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    torch.save({"weights": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="could not be read as tensors with torch.load\\(weights_only=True\\)"):
        load_torch_weights(tmp_path / "evil.pt", arch="mlp", input_shape=(64,), n_classes=10)
    assert EXECUTED == []  # the payload never ran
    with pytest.raises(ValueError, match="does not fit architecture 'mlp'"):
        load_torch_weights(tmp_path / "w.pt", arch="mlp", input_shape=(64,), n_classes=10)  # width 256 expected
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="must hold a state dict"):
        load_torch_weights(tmp_path / "list.pt", arch="mlp", input_shape=(64,), n_classes=10)


def test_sklearn_files_skops_is_safe_pickle_needs_trust(tmp_path, records):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression(max_iter=200).fit(*records["train"])
    sio.dump(est, tmp_path / "m.skops")
    assert np.array_equal(load_sklearn(tmp_path / "m.skops").coef_, est.coef_)
    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump(Payload(), f)
    with pytest.raises(PermissionError, match="--trust-pickle"):
        load_sklearn(tmp_path / "m.pkl")
    assert EXECUTED == []
    with open(tmp_path / "ok.pkl", "wb") as f:
        pickle.dump(est, f)
    with pytest.warns(UserWarning, match="runs any code"):
        assert np.array_equal(load_sklearn(tmp_path / "ok.pkl", trust_pickle=True).coef_, est.coef_)
    (tmp_path / "m.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=".skops"):
        load_sklearn(tmp_path / "m.pt")


def test_records_npz_refuses_pickled_arrays(tmp_path):
    np.savez(tmp_path / "bad.npz", members_X=np.array([object()], dtype=object), members_y=np.zeros(1),
             nonmembers_X=np.zeros((1, 2)), nonmembers_y=np.zeros(1))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_records(tmp_path / "bad.npz")
    np.savez(tmp_path / "few.npz", members_X=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="must hold"):
        load_records(tmp_path / "few.npz")


def test_cli_audit_model_torch_weights_and_sklearn(tmp_path, records, capsys):
    from mialab.training import TrainConfig, train_model

    X, y = records["train"]
    tm = train_model(lambda: mialab.models.build_model("mlp", input_shape=(64,), n_classes=10), X, y,
                     config=TrainConfig(epochs=3), seed=0)
    torch.save(tm.model.state_dict(), tmp_path / "target.pt")
    out = tmp_path / "run"
    rc = main(["audit-model", "--weights", str(tmp_path / "target.pt"), "--arch", "mlp", "--data",
               str(records["path"]), "--attacks", "loss,lira-offline", "--shadows", "2", "--epochs", "3",
               "--bootstrap", "50", "--n-target-train", str(len(y)), "--out", str(out), "--quiet", "--no-cache"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["attacks"]) == {"loss", "lira-offline"} and res["config"]["access"] == "probabilities"
    assert "loss" in capsys.readouterr().out
    # a pickled estimator is refused without the flag: exit code 2 and the reason
    from sklearn.linear_model import LogisticRegression

    with open(tmp_path / "lr.pkl", "wb") as f:
        pickle.dump(LogisticRegression(max_iter=200).fit(X, y), f)
    rc = main(["audit-model", "--sklearn", str(tmp_path / "lr.pkl"), "--data", str(records["path"]), "--quiet"])
    assert rc == 2 and "--trust-pickle" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rc = main(["audit-model", "--sklearn", str(tmp_path / "lr.pkl"), "--trust-pickle", "--data",
                   str(records["path"]), "--access", "label", "--attacks", "correctness", "--bootstrap", "50",
                   "--out", str(tmp_path / "lr"), "--quiet"])
    assert rc == 0


def test_cli_audit_model_torchscript(tmp_path, records):
    model = mialab.models.build_model("logreg", input_shape=(64,), n_classes=10)
    torch.jit.save(torch.jit.script(model), str(tmp_path / "m.ts"))
    rc = main(["audit-model", "--torchscript", str(tmp_path / "m.ts"), "--data", str(records["path"]),
               "--access", "label", "--attacks", "correctness", "--bootstrap", "50", "--out", str(tmp_path / "ts"),
               "--quiet"])
    assert rc == 0


def test_csv_records_need_integer_labels(tmp_path):
    for name, labels in (("m.csv", ["cat", "dog"]), ("n.csv", ["dog", "dog"])):
        (tmp_path / name).write_text("a,b,label\n" + "\n".join(f"{i},{i + 1},{lab}" for i, lab in enumerate(labels)))
    with pytest.raises(ValueError, match=r"members CSV file: .*m.csv column 'label' row 1 must be a non-negative "
                                         r"integer class index, got 'cat' \(the class index the model predicts"):
        load_records(members=tmp_path / "m.csv", nonmembers=tmp_path / "n.csv", label_column="label")
    (tmp_path / "i.csv").write_text("a,b,label\n0,1,3\n1,2,4\n")
    rec = load_records(members=tmp_path / "i.csv", nonmembers=tmp_path / "i.csv", label_column="label")
    assert rec["members"][1].tolist() == [3, 4] and rec["population"] is None
