"""``--cluster``/``--task-index``: the TF_CONFIG they build (a table of cases), the one-line
errors naming the option, and the CLI's refusal of both TF_CONFIG and the options. No TensorFlow;
the two-process run on 127.0.0.1 is in test_training_distributed.py."""

from __future__ import annotations

import importlib
import json
import os

import pytest

from amls2.errors import ConfigError
from amls2.training.cluster import cluster_tf_config, parse_cluster

USER_TF_CONFIG = json.dumps(
    {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}
)


@pytest.mark.parametrize(
    ("cluster", "index", "workers"),
    [
        ("127.0.0.1:2222,127.0.0.1:2223", 0, ["127.0.0.1:2222", "127.0.0.1:2223"]),
        ("127.0.0.1:2222,127.0.0.1:2223", 1, ["127.0.0.1:2222", "127.0.0.1:2223"]),
        (" gpu1:1 , gpu2:65535 ,gpu3:0080", 2, ["gpu1:1", "gpu2:65535", "gpu3:80"]),
        ("host-a.example.org:2222,host-b.example.org:2222", 1, None),
        ("[::1]:2222,[::1]:2223", 0, None),
        ("a:2222,A:2223", 1, None),  # same host, other port
    ],
)
def test_builds_a_worker_tf_config(cluster, index, workers):
    tf_config = json.loads(cluster_tf_config(cluster, index, None))
    expected = workers or [part.strip() for part in cluster.split(",")]
    assert tf_config == {
        "cluster": {"worker": expected},
        "task": {"type": "worker", "index": index},
    }


@pytest.mark.parametrize("existing", [None, "", "  ", USER_TF_CONFIG])
def test_no_options_keep_the_environment(existing):
    assert cluster_tf_config(None, None, existing) is None


@pytest.mark.parametrize("existing", ["", "  \n"])
def test_an_empty_tf_config_counts_as_unset(existing):
    assert cluster_tf_config("a:1,b:1", 0, existing) is not None


@pytest.mark.parametrize(
    ("cluster", "index", "existing", "message"),
    [
        ("a:1,b:1", 0, USER_TF_CONFIG, "--cluster/--task-index: TF_CONFIG is also set"),
        (None, 0, None, "--task-index: needs --cluster"),
        ("a:1,b:1", None, None, "--cluster: needs --task-index"),
        ("a:1,b:1", 2, None, "--task-index 2: not in 0..1"),
        ("a:1,b:1", -1, None, "--task-index -1: not in 0..1"),
        ("a:1", 0, None, "needs at least 2 HOST:PORT entries"),
        ("", 0, None, "--cluster '': empty entry"),
        ("a:1,,b:1", 0, None, "empty entry"),
        ("a:1,b:1,", 0, None, "empty entry"),
        ("a:1,b", 0, None, "--cluster: 'b' is not HOST:PORT"),
        ("a:1,:2", 0, None, "--cluster: ':2' is not HOST:PORT"),
        ("a:1,b:", 0, None, "--cluster: 'b:' is not HOST:PORT"),
        ("a:1,b:x1", 0, None, "--cluster: 'b:x1' is not HOST:PORT"),
        ("a:1,b:-1", 0, None, "--cluster: 'b:-1' is not HOST:PORT"),
        ("a:1,b:2.5", 0, None, "--cluster: 'b:2.5' is not HOST:PORT"),
        ("a:1,b c:2", 0, None, "--cluster: 'b c:2' is not HOST:PORT"),
        ("a:1,::1:2", 0, None, "--cluster: '::1:2' is not HOST:PORT"),
        ("a:1,b:0", 0, None, "--cluster: 'b:0': port 0 is not in 1..65535"),
        ("a:1,b:65536", 0, None, "port 65536 is not in 1..65535"),
        ("a:1,b:2,a:1", 0, None, "--cluster: 'a:1' is listed twice"),
        ("a:1,A:01", 0, None, "--cluster: 'A:01' is listed twice (also as 'a:1')"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_option(cluster, index, existing, message):
    with pytest.raises(ConfigError) as info:
        cluster_tf_config(cluster, index, existing)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_parse_cluster_normalises_the_port():
    assert parse_cluster("a:007,b:2") == ["a:7", "b:2"]


def test_importing_the_cli_leaves_tf_config_alone(monkeypatch):
    import amls2.cli.train_cmd
    import amls2.training.cluster

    monkeypatch.delenv("TF_CONFIG", raising=False)
    importlib.reload(amls2.training.cluster)
    importlib.reload(amls2.cli.train_cmd)
    assert "TF_CONFIG" not in os.environ


@pytest.mark.parametrize(
    ("options", "tf_config", "message"),
    [
        (["--cluster", "a:1,b:1", "--task-index", "0"], USER_TF_CONFIG, "TF_CONFIG is also set"),
        (["--task-index", "0"], None, "--task-index: needs --cluster"),
        (["--cluster", "a:1,b:1"], None, "--cluster: needs --task-index"),
        (["--cluster", "a:1,b:1", "--task-index", "5"], None, "--task-index 5: not in 0..1"),
        (["--cluster", "a:99999,b:1", "--task-index", "0"], None, "port 99999"),
    ],
)
def test_cli_refuses_with_exit_2_before_any_training(
    monkeypatch, capsys, tmp_path, options, tf_config, message
):
    from amls2.cli import main

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    argv = ["train", "--model", "espcn", "--out-dir", str(tmp_path / "run"), *options]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("amls2 train: error: ") and message in err
    assert "\n" not in err
    assert os.environ.get("TF_CONFIG") == tf_config  # untouched
    assert not (tmp_path / "run").exists()
