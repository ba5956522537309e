"""What a trained model costs to serve: the kept SavedModel, its LiteRT exports, their
figures in the record and in W&B, ``python -m bench.serve`` and the serving verdict.

One session fixture trains and serves one small run with the real command (the tests' hub
backbone, W&B offline, ``serve=true``: the launcher serves the record in a process of its
own once the worker has ended); the rest test functions on the files it left.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import (
    SMALL_DATA,
    TINY,
    bench_run,
    hub_backbone,
    load_records,
    make_spec,
    offline,
)
from tests.wandb_files import read_run, records

EXPORTS = ("float32", "float16", "dynamic_int8", "int8")
# Largest probability gap to the SavedModel each export may show on held-out images:
# float32 is the same arithmetic in another runtime; float16 rounds the weights to 11
# significant bits; the int8 formats round weights (and activations) to 256 levels, and
# full-integer int8 also returns its probabilities as uint8 (steps of 1/256).
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "dynamic_int8": 0.05, "int8": 0.05}
SERVING = ["serve=true", "serving.calibration_images=16"]


@dataclass
class Served:
    root: Path
    record_path: Path
    printed: str  # what the command said

    @property
    def record(self) -> dict:
        return json.loads(self.record_path.read_text())


@pytest.fixture(scope="session")
def served(tmp_path_factory, tfds_dir, hub_dir) -> Served:
    """One run of the hub backbone that keeps its model (the default) and serves it."""
    root = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        offline(patch, root)
        overrides = [*SMALL_DATA, *hub_backbone(hub_dir), "wandb.mode=offline", *SERVING]
        done = bench_run(root, tfds_dir, *overrides, "keep_model=true")
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = load_records(root)
    return Served(root, root / "runs" / f"{record['run_id']}.json", done.stdout + done.stderr)


def _images(record: dict, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The split the run was evaluated on, as the data pipeline hands it to the model."""
    from bench.core.spec import RunSpec
    from bench.pipeline import data

    spec = RunSpec.of(record["config"], record["run_id"])
    pairs = list(data.load(spec).images[split].batch(1000))
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def _saved_model(path: str, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["serving_default"]
    return signature(image=tf.constant(images))["probabilities"].numpy()


def _litert(path: str, images: np.ndarray) -> np.ndarray:
    """An export's probabilities, run with LiteRT's interpreter by hand (not bench's runner)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(given["index"], list(images.shape))
    interpreter.allocate_tensors()
    x = images
    if given["dtype"] != np.float32:  # full integer: the input's own quantization
        scale, zero = given["quantization"]
        x = np.clip(np.round(images / scale + zero), 0, 255)
    interpreter.set_tensor(given["index"], x.astype(given["dtype"]))
    interpreter.invoke()
    y = interpreter.get_tensor(taken["index"])
    if taken["dtype"] != np.float32:
        scale, zero = taken["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


# ---- The kept model ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_kept_savedmodel_predicts_as_the_trained_keras_model_without_bench(tmp_path, tfds_dir):
    """MobileNetV2 (BatchNorm, its input range) trained a step, kept, then loaded by plain
    TensorFlow in a fresh process that never imports bench."""
    from bench.pipeline import data, keep, model

    spec = make_spec(*TINY, f"results_dir={tmp_path}", tfds_dir=tfds_dir)
    found = data.load(spec)
    built = model.build(spec, found.num_classes)
    built.model.compile("adam", "sparse_categorical_crossentropy")
    built.model.fit(found.train.take(1), verbose=0)  # moving statistics off their start
    kept = keep.keep_whole(spec, built, found.num_classes, "float32")
    images, _ = _images({"config": spec.config_dict(), "run_id": spec.run_id})
    scaled = np.concatenate([x for x, _ in found.test])  # what training's model was fed
    expected = built.model.predict(scaled, verbose=0)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({kept.path!r}).signatures['serving_default']\n"
        "x = tf.constant(np.load('images.npy'))\n"
        "np.save('out.npy', m(image=x)['probabilities'].numpy())\n"
        "assert not any(name.startswith('bench') for name in sys.modules)\n"
    )  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    found_probabilities = np.load(tmp_path / "out.npy")
    assert found_probabilities.shape == (32, 4)
    np.testing.assert_allclose(found_probabilities, expected, atol=1e-5)
    assert kept.path == str(tmp_path / "models" / spec.run_id / "saved_model")
    assert kept.params == built.model.count_params()
    # The model's own float32 variables, not Adam's two slots per weight beside them.
    (data,) = Path(kept.path).glob("variables/variables.data-*")
    assert kept.params * 4 <= data.stat().st_size < kept.params * 4 * 1.05
    assert "0..255" in kept.input and "32 px" in kept.input


@pytest.mark.slow
def test_a_mixed_precision_run_keeps_a_float32_model(tmp_path, tfds_dir, tiny):
    """Trained in mixed_float16 (as on a GPU), kept to be served on CPUs: no float16 op
    or tensor anywhere in the SavedModel's graphs."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    from tests.helpers import bench_run, load_records

    proc = bench_run(tmp_path, tfds_dir, *tiny, "precision=mixed_float16", "keep_model=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (done,) = load_records(tmp_path)
    assert done["env"]["precision"] == "mixed_float16"
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(done["model"]["path"]) / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    half = types_pb2.DT_HALF
    found = [n.name for n in nodes for a in n.attr.values() if half in (a.type, *a.list.type)]
    assert nodes and found == []


def test_multiply_adds_are_counted_exactly_on_a_model_built_by_hand():
    """A 3x3 convolution (3 to 8 channels, 16x16 out), a 3x3 depthwise one (8 channels,
    8x8 out) and a dense layer (8 to 5): 55,296 + 4,608 + 40 multiply-adds; pooling,
    biases and activations are not counted."""
    import tf_keras as keras

    from bench.pipeline.keep import multiply_adds

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    expected = 16 * 16 * 8 * 27 + 8 * 8 * 8 * 9 + 40
    assert multiply_adds(lambda image: model(image), (16, 16, 3)) == expected


# ---- Serving at the end of a run ---------------------------------------------------------


@pytest.mark.slow
def test_a_served_run_records_every_format_and_points_to_its_model(served):
    from bench.core.environment import usable_cores

    record = served.record
    assert record["schema_version"] == 6 and record["status"] == "completed"
    model = record["model"]
    assert Path(model["path"]) == served.root / "runs" / "models" / record["run_id"] / "saved_model"
    assert model["artifact"] == f"model-{record['run_id']}"
    assert model["params"] > 0 and model["macs_per_image"] > 0 and model["size_bytes"] > 0
    serving, cores = record["serving"], str(usable_cores())
    assert set(serving["formats"]) == {"saved_model", *EXPORTS}
    assert serving["host_cpu"] and serving["threads"][0] == 1
    assert serving["eval_split"] == "test" and serving["eval_images"] == 32
    assert serving["calibration_images"] == 16
    assert serving["versions"]["tensorflow"] and serving["versions"]["ai-edge-litert"]
    for name, result in serving["formats"].items():
        assert result["status"] == "measured", (name, result)
        assert result["size_bytes"] > 0 and result["images_per_s"] > 0
        threads = [cores] if name == "saved_model" else sorted({"1", cores})
        assert sorted(result["latency"]) == threads, name
        for latency in result["latency"].values():
            assert 0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"]
            assert latency["calls"] == 200
    sizes = {name: serving["formats"][name]["size_bytes"] for name in EXPORTS}
    assert sizes["int8"] < sizes["float32"] and sizes["dynamic_int8"] < sizes["float32"]
    assert sizes["float16"] < sizes["float32"]


@pytest.mark.slow
def test_every_export_agrees_with_the_savedmodel_and_its_accuracy_is_its_own(served):
    record = served.record
    images, labels = _images(record)
    reference = _saved_model(record["model"]["path"], images)
    formats = record["serving"]["formats"]
    assert formats["saved_model"]["accuracy"] == (reference.argmax(-1) == labels).mean()
    for name in EXPORTS:
        found = _litert(formats[name]["path"], images)
        assert np.abs(found - reference).max() <= TOLERANCE[name], name
        correct = int((found.argmax(-1) == labels).sum())
        assert formats[name]["correct"] == correct, name
        assert formats[name]["accuracy"] == correct / len(labels), name


@pytest.mark.slow
def test_wandb_gets_the_serving_figures_and_the_model_artifact(served):
    """The launcher serves after the worker has closed the run's W&B run, so it resumes the
    run by id, as ``bench.serve`` does (offline: a second folder, merged by ``wandb sync``,
    whose command it prints), with the served record as a new version of its artifact."""
    from bench.core.record import serving_from_dict

    record = served.record
    assert f"W&B run {record['run_id']} (offline): serving figures and model logged" in (
        served.printed
    )
    (resumed,) = [d for d in served.root.glob("wandb/offline-run-*")
                  if d != Path(record["wandb"]["dir"])]  # fmt: skip
    assert f"upload them with: wandb sync {resumed}" in served.printed
    run = read_run(resumed)
    assert run["run"].run_id == record["run_id"]
    expected = serving_from_dict(record["serving"]).figures()
    for key, value in expected.items():
        assert run["summary"][key] == pytest.approx(value), key
    assert run["summary"]["model.macs_per_image"] == record["model"]["macs_per_image"]
    (path,) = resumed.glob("run-*.wandb")
    found = [r.artifact for r in records(path) if r.WhichOneof("record_type") == "artifact"]
    (model,) = [a for a in found if a.type == "model"]
    assert model.name == f"model-{record['run_id']}"
    files = {entry.path for entry in model.manifest.contents}
    assert "saved_model/saved_model.pb" in files
    assert {f"{name}.tflite" for name in EXPORTS} <= files
    (served_record,) = [a for a in found if a.type == "result-record"]
    assert served_record.name == f"record-{record['run_id']}"
    (entry,) = served_record.manifest.contents
    assert entry.path == "record.json" and entry.digest == _md5(served.record_path)


def _md5(path: Path) -> str:
    """A file's MD5 as W&B's manifests hold it (base64)."""
    import base64
    import hashlib

    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


@pytest.mark.slow
def test_the_multiruns_table_gets_the_serving_columns(served):
    from bench.core import record as records
    from bench.core.spec import RunSpec
    from bench.launch import progress

    rec = records.read(served.record_path)
    row = progress.summary(rec, RunSpec.of(rec.config, rec.run_id))
    int8 = rec.serving.formats["int8"]
    assert row["serving.int8.size_mb"] == int8.size_bytes / 1e6
    assert row["serving.int8.p50_ms"] == int8.latency["1"].p50_ms
    assert row["macs_millions"] == rec.model.macs_per_image / 1e6
    header, line = progress.format_table([row]).splitlines()
    assert header.split()[-4:] == ["MMACs", "int8_MB", "int8_ms", "run_id"]
    assert line.split()[-3] == f"{int8.size_bytes / 1e6:.2f}"


@pytest.mark.slow
def test_the_report_gets_a_serving_section_with_its_table_and_fronts(served, tmp_path):
    from bench.analysis import report

    out = tmp_path / "report"
    budgets = ["--latency-budget-ms", "1000", "--size-budget-mb", "100"]
    with redirect_stdout(io.StringIO()):
        assert report.main(["--runs", str(served.root / "runs"), "--out", str(out), *budgets]) == 0
    text = (out / "report.md").read_text()
    serving = text[text.index("### Serving") :]
    assert "- Most accurate within 1000 ms per image at batch 1 on " in serving
    assert "- Most accurate within 100 MB: " in serving
    assert "- Full-integer int8 against float32" in serving
    for name in ("saved_model", *EXPORTS):
        assert f"| {name} " in serving, name
    assert "size_MB" in serving and "accuracy change from float32" in serving
    assert (out / "figures" / "serving_shapes.png").is_file()
    assert "serving_shapes.png" in text


# ---- python -m bench.serve -----------------------------------------------------------------


def _unconvertible(served: Served, tmp_path: Path) -> Path:
    """A copy of the served run whose kept model holds ``tf.math.cumprod``, an op LiteRT
    lacks, in a runs folder of its own beside the served run's record."""
    import tensorflow as tf
    import tf_keras as keras

    from bench.pipeline import keep

    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(served.record_path, runs)
    rec = served.record
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Lambda(lambda t: tf.math.cumprod(t + 1.0, axis=-1))(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    path = runs / "models" / "cumprod" / "saved_model"
    module = keep.RawImageModel(keras.Model(inputs, outputs), 32, (0.0, 1.0))
    tf.saved_model.save(module, str(path), signatures={keep.SIGNATURE: module.serve})
    rec.update(run_id="cumprod", serving=None,
               wandb={"mode": "disabled", "id": None, "url": None, "dir": None})  # fmt: skip
    rec["model"] = {**rec["model"], "path": str(path), "artifact": None}
    (runs / "cumprod.json").write_text(json.dumps(rec))
    return runs


def _serve(*args: str) -> str:
    from bench import serve

    printed = io.StringIO()
    with redirect_stdout(printed):
        assert serve.main([*args, "--timed-calls", "20", "--calibration-images", "8"]) == 0
    return printed.getvalue()


@pytest.mark.slow
def test_an_unsupported_format_is_recorded_and_a_second_serve_measures_nothing(served, tmp_path):
    runs = _unconvertible(served, tmp_path)
    before = (runs / served.record_path.name).read_bytes()
    first = _serve("--runs", str(runs))
    assert "2 records selected, 1 with formats to measure" in first
    assert (runs / served.record_path.name).read_bytes() == before  # already served: untouched
    formats = json.loads((runs / "cumprod.json").read_text())["serving"]["formats"]
    assert formats["saved_model"]["status"] == "measured"
    assert formats["saved_model"]["accuracy"] is not None
    for name in EXPORTS:
        assert formats[name]["status"] == "unsupported", name
        assert "Cumprod" in formats[name]["reason"], formats[name]["reason"]
    assert "unsupported" in first and "Cumprod" in first
    after = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    second = _serve("--runs", str(runs))
    assert "2 records selected, 0 with formats to measure" in second
    assert {p.name: p.read_bytes() for p in runs.glob("*.json")} == after


@pytest.mark.slow
def test_a_later_serve_adds_its_figures_and_model_to_the_runs_wandb_run(
    served, tmp_path, monkeypatch
):
    """A run that kept its model but was not served: bench.serve resumes its offline W&B
    run by id, which ``wandb sync`` then merges into the run."""
    record = served.record
    runs, model = tmp_path / "runs", tmp_path / "model" / "saved_model"
    shutil.copytree(record["model"]["path"], model)
    record.update(serving=None, model={**record["model"], "path": str(model)})
    runs.mkdir()
    (runs / f"{record['run_id']}.json").write_text(json.dumps(record))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    printed = _serve("--runs", str(runs), "--formats", "float32")
    assert f"W&B run {record['run_id']} (offline): serving figures and model logged" in printed
    (resumed,) = tmp_path.glob("wandb/offline-run-*")
    run = read_run(resumed)
    assert run["run"].run_id == record["run_id"]
    served_now = json.loads((runs / f"{record['run_id']}.json").read_text())
    served_now = served_now["serving"]["formats"]
    assert run["summary"]["serving.float32.size_bytes"] == served_now["float32"]["size_bytes"]
    assert "serving.int8.size_bytes" not in run["summary"]
    (path,) = resumed.glob("run-*.wandb")
    artifacts = [r.artifact for r in records(path) if r.WhichOneof("record_type") == "artifact"]
    (artifact,) = [a for a in artifacts if a.type == "model"]
    assert {e.path for e in artifact.manifest.contents} >= {"float32.tflite"}


@pytest.mark.slow
def test_several_records_are_converted_ahead_then_each_is_measured(served, tmp_path, monkeypatch):
    """Two records to serve: their exports are converted at once (two processes, nothing
    timed), then each is measured with what was staged for it: the files end beside its
    model, and a refusal staged for the model LiteRT cannot take is recorded."""
    from bench.core import environment

    monkeypatch.setattr(environment, "usable_cores", lambda: 2)
    runs = _unconvertible(served, tmp_path)
    model = tmp_path / "second" / "saved_model"
    shutil.copytree(served.record["model"]["path"], model)
    record = {**served.record, "run_id": "second", "serving": None,
              "model": {**served.record["model"], "path": str(model)},
              "wandb": {"mode": "disabled", "id": None, "url": None, "dir": None}}  # fmt: skip
    (runs / "second.json").write_text(json.dumps(record))
    printed = _serve("--runs", str(runs), "--formats", "float32,int8")
    assert "converting the exports of 2 records, 2 at a time" in printed
    assert "converted second: float32, int8" in printed and "converted cumprod: nothing" in printed
    formats = json.loads((runs / "second.json").read_text())["serving"]["formats"]
    for name in ("float32", "int8"):
        assert formats[name]["status"] == "measured", formats[name]
        assert Path(formats[name]["path"]) == model.parent / f"{name}.tflite"
        assert Path(formats[name]["path"]).is_file()
    assert formats["float32"]["accuracy"] == formats["saved_model"]["accuracy"]
    refused = json.loads((runs / "cumprod.json").read_text())["serving"]["formats"]
    assert refused["int8"]["status"] == "unsupported" and "Cumprod" in refused["int8"]["reason"]


def test_a_bad_format_fails_before_anything_is_read(capsys):
    from bench import serve

    with pytest.raises(SystemExit) as stopped:
        serve.main(["--runs", "nowhere", "--formats", "float32,int4"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "int4" in err and "dynamic_int8" in err and "--formats" in err


# ---- Config ---------------------------------------------------------------------------------


def test_serving_needs_the_kept_model(capsys):
    from bench.core.errors import ConfigError
    from bench.core.spec import build
    from tests.helpers import compose

    with pytest.raises(ConfigError) as raised:
        build(compose("serve=true", "keep_model=false"))
    assert "serve" in str(raised.value) and "keep_model" in str(raised.value)


def _fails(path: str, settings, staging) -> None:  # at the top level: runs in a spawned process
    raise RuntimeError("no data on this machine")


def test_a_serve_that_fails_leaves_the_run_completed_and_says_how_to_serve_it(tmp_path, capsys):
    """``serve=true``: the launcher serves a completed run after its worker; a serve that
    fails (in its own process) leaves the record completed, unserved, and says what to run."""
    import dataclasses

    from bench.core import record as records
    from bench.core.record import ModelInfo
    from bench.launch import job, serve_all
    from tests.test_records import GOLDEN

    spec = make_spec("serve=true", f"results_dir={tmp_path}")
    model = tmp_path / "models" / spec.run_id / "saved_model"
    model.mkdir(parents=True)
    rec = dataclasses.replace(records.read(GOLDEN / "v5.json"), run_id=spec.run_id,
                              model=ModelInfo(path=str(model)), serving=None)  # fmt: skip
    assert rec.completed
    records.write(rec, tmp_path)
    published = []
    steps = serve_all.Steps(_fails, _fails, lambda path, done: published.append(done) or True)
    after = job.served(rec, spec, steps)
    assert after.completed and after.serving is None and not published
    printed = capsys.readouterr()
    assert "not served: RuntimeError: no data on this machine" in printed.err
    assert f"run {spec.run_id} is completed but not served; python -m bench.serve" in printed.out


def test_a_kept_head_is_pending_where_the_record_says_or_beside_a_moved_record(tmp_path):
    """A run on cached features keeps its head only: a serve has every format to measure
    (it assembles the SavedModel first), also when the results were moved."""
    import dataclasses

    from bench.core import pending
    from bench.core import record as records
    from bench.core.record import ModelInfo
    from bench.core.schema import ServingConfig
    from tests.test_records import GOLDEN

    base = records.read(GOLDEN / "v5.json")
    stale = str(tmp_path / "gone" / "models" / base.run_id / pending.HEAD_WEIGHTS)
    rec = dataclasses.replace(base, model=ModelInfo(head_weights=stale), serving=None)
    moved = tmp_path / "moved" / f"{rec.run_id}.json"
    assert pending.formats(rec, ServingConfig(), moved) == []  # no head anywhere
    beside = tmp_path / "moved" / "models" / rec.run_id / pending.HEAD_WEIGHTS
    beside.parent.mkdir(parents=True)
    beside.write_bytes(b"")
    assert pending.kept_head(rec, moved) == beside
    assert pending.formats(rec, ServingConfig(), moved) == ["saved_model", *EXPORTS]


def test_a_misspelt_serving_format_fails_when_the_config_is_composed():
    from tests.helpers import compose

    with pytest.raises(Exception, match="int4"):
        compose("serving.formats=[float32,int4]")


# ---- The serving verdict --------------------------------------------------------------------


def _record(base, run_id: str, backbone: str, seed: int, formats: dict):
    """A completed record of ``backbone`` with hand-written serving figures per format:
    ``{format: (accuracy, p50_ms at one thread, size in MB)}``."""
    import dataclasses

    from bench.core.record import FormatResult, Latency, ServingInfo

    config = {**base.config, "backbone": {**base.config["backbone"], "name": backbone},
              "seed": seed}  # fmt: skip
    results = {
        name: FormatResult("measured", size_bytes=int(mb * 1e6), accuracy=acc, correct=0,
                           latency={"1": Latency(p50, p50, p50, 200),
                                    "2": Latency(p50 / 2, p50, p50, 200)},
                           images_per_s=1000 / p50)
        for name, (acc, p50, mb) in formats.items()
    }  # fmt: skip
    serving = ServingInfo("2026-12-01T00:00:00+00:00", host_cpu="Test CPU", threads=[1, 2],
                          formats=results)  # fmt: skip
    return dataclasses.replace(base, run_id=run_id, config=config, serving=serving)


def test_the_budget_sentences_pick_the_most_accurate_model_that_fits(tmp_path):
    """B3 is the most accurate and fits neither budget. Within 10 ms B0 int8 (6 ms) is the
    most accurate export, a point ahead of MobileNetV2 float32 on every seed; within 8 MB
    only MobileNetV2's two exports fit."""
    from bench.analysis import load, serving, tables
    from bench.core import record as records
    from tests.test_records import GOLDEN

    base = records.read(GOLDEN / "v5.json")
    figures = {  # format: (accuracy, p50 ms at one thread, MB)
        "b3": {"float32": (0.90, 40.0, 40.0), "int8": (0.89, 15.0, 11.0)},
        "b0": {"float32": (0.82, 12.0, 20.0), "int8": (0.75, 6.0, 9.0)},
        "mobilenet_v2": {"float32": (0.74, 4.0, 7.5), "int8": (0.70, 2.0, 2.5)},
    }
    found = []
    for backbone, formats in figures.items():
        for seed in (1, 2, 3):
            shifted = {f: (acc + 0.01 * seed, p50, mb) for f, (acc, p50, mb) in formats.items()}
            found.append((_record(base, f"{backbone}{seed}", backbone, seed, shifted), "hand"))
    comparison = tables.comparisons(load.build(found, []).runs)["shapes"]
    latency, size, int8 = serving.sentences(serving.serving(comparison), 10.0, 8.0)
    assert latency.startswith(
        "Most accurate within 10 ms per image at batch 1 on Test CPU (p50, one thread): "
        "b0 / 32 as int8 with accuracy 0.770 (mean of 3 seeds, 95% CI 0.745 to 0.795), 6.00 ms"
    ), latency
    assert "ahead of mobilenet_v2 / 32 as float32 with 0.760 (mean of 3 seeds, 95% CI 0.735 " \
           "to 0.785) by 1.0 points (paired t over 3 seeds both ran: 95% CI [+1.0, +1.0] " \
           "points)" in latency, latency  # fmt: skip
    assert latency.endswith("(3 of 6 exports fit)."), latency
    assert size.startswith("Most accurate within 8 MB: mobilenet_v2 / 32 as float32"), size
    assert size.endswith("7.50 MB (2 of 6 exports fit)."), size  # no other model fits
    # The same models exported twice: paired over the three runs, every pair -7 points.
    assert "b0 / 32: -7.00 points (95% CI -7.00 to -7.00; paired over 3 runs) of accuracy, " \
           "55% smaller, p50 latency 50% lower" in int8, int8  # fmt: skip
    nothing = serving.sentences(serving.serving(comparison), 1.0, 1.0)
    assert nothing[0].startswith("No LiteRT export is within 1 ms per image"), nothing[0]
    assert "the cheapest is mobilenet_v2 / 32 as int8 at 2.00 ms" in nothing[0]


def _comparison(found):
    from bench.analysis import load, tables

    return tables.comparisons(load.build(found, []).runs)["shapes"]


def test_the_accuracy_change_pairs_only_runs_both_formats_were_measured_for():
    """int8 measured for seed 1 only (unsupported on the others): its change from float32
    is that one model's, not int8 of seed 1 against float32's mean over three seeds."""
    from bench.analysis import serving
    from bench.core import record as records
    from tests.test_records import GOLDEN

    base = records.read(GOLDEN / "v5.json")
    found = []
    for seed, accuracy in ((1, 0.50), (2, 0.70), (3, 0.90)):
        formats = {"float32": (accuracy, 4.0, 8.0)}
        if seed == 1:
            formats["int8"] = (0.48, 2.0, 2.0)
        found.append((_record(base, f"b0{seed}", "b0", seed, formats), "hand"))
    served = serving.serving(_comparison(found))
    (change,) = served.change.values()
    assert change.value == pytest.approx(-0.02) and not change.tested
    assert "-2.00 points (one run)" in serving.display(served).to_string()


def test_a_missing_key_is_a_group_of_its_own_and_ties_go_to_the_cheaper_export():
    """A sweep over ``backbone.bn_momentum=null,0.9``: two groups (never averaged
    together), both served and shown.
    float32 and float16 score the same: the size budget names the smaller."""
    import dataclasses

    from bench.analysis import serving
    from bench.core import record as records
    from tests.test_records import GOLDEN

    base = records.read(GOLDEN / "v5.json")
    found = []
    for momentum in (None, 0.9):
        for seed in (1, 2):
            formats = {"float32": (0.6, 4.0, 8.0), "float16": (0.6, 4.0, 4.0)}
            rec = _record(base, f"m{momentum}{seed}", "b0", seed, formats)
            config = {**rec.config, "backbone": {**rec.config["backbone"], "bn_momentum": momentum}}
            found.append((dataclasses.replace(rec, config=config), "hand"))
    comparison = _comparison(found)
    assert len(comparison.table) == 2
    served = serving.serving(comparison)
    assert len(served.table) == 4  # two groups by two formats
    size = serving.sentences(served, 10.0, 100.0)[1]
    assert "as float16" in size.split(":")[1].split(";")[0], size


@pytest.mark.slow
def test_a_moved_record_is_served_from_beside_it_and_a_failed_format_is_tried_again(
    served, tmp_path
):
    """Results copied to another folder: the record's model path is stale, the model is
    at ``models/<run_id>/`` beside it. A format recorded ``failed`` is measured again;
    a measured one is not."""
    record = served.record
    runs = tmp_path / "moved"
    shutil.copytree(Path(record["model"]["path"]).parent, runs / "models" / record["run_id"])
    record["model"]["path"] = str(tmp_path / "gone" / "saved_model")
    formats = record["serving"]["formats"]
    formats["float16"] = {"status": "failed", "reason": "RuntimeError: boom"}
    for name in ("saved_model", "dynamic_int8", "int8"):
        formats.pop(name)
    (runs / f"{record['run_id']}.json").write_text(json.dumps(record))
    printed = _serve("--runs", str(runs), "--formats", "float32,float16")
    assert "1 with formats to measure" in printed and ": saved_model, float16" in printed
    after = json.loads((runs / f"{record['run_id']}.json").read_text())
    assert after["model"]["path"] == str(runs / "models" / record["run_id"] / "saved_model")
    assert after["serving"]["formats"]["float16"]["status"] == "measured"
    assert after["serving"]["formats"]["float32"] == formats["float32"]  # kept as it was


@pytest.mark.slow
def test_a_stop_during_a_conversion_stops_the_serve_and_keeps_what_it_measured(
    served, tmp_path, monkeypatch
):
    """SIGTERM while the converter runs (a serve's process that is being stopped): not an
    ``unsupported`` verdict, but a stop; the SavedModel's figures stay."""
    from bench.core.errors import Interrupted
    from bench.core.schema import ServingConfig
    from bench.pipeline import exports, litert

    record = served.record
    record.update(serving=None)
    path = tmp_path / f"{record['run_id']}.json"
    path.write_text(json.dumps(record))

    def stopped():
        raise Interrupted("stopped by SIGTERM")

    converter = SimpleNamespace(target_spec=SimpleNamespace(), convert=stopped)
    monkeypatch.setattr(litert.tf.lite.TFLiteConverter, "from_saved_model", lambda _: converter)
    with pytest.raises(Interrupted):
        exports.measure(path, ServingConfig(timed_calls=20))
    formats = json.loads(path.read_text())["serving"]["formats"]
    assert list(formats) == ["saved_model"] and formats["saved_model"]["status"] == "measured"


@pytest.mark.slow
def test_a_record_served_on_another_cpu_is_measured_again_whole(served, monkeypatch):
    from bench.core import environment
    from bench.core import record as records
    from bench.core.pending import formats as pending
    from bench.core.schema import ServingConfig

    rec = records.read(served.record_path)
    assert pending(rec, ServingConfig(), served.record_path) == []
    monkeypatch.setattr(environment, "cpu_model", lambda: "Another CPU")
    assert pending(rec, ServingConfig(), served.record_path) == [
        "saved_model", *EXPORTS
    ]  # fmt: skip
