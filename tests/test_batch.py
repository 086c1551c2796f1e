"""Cluster workflow: train once, CreateBatchFiles, then parallel workers that never train.

With this interpreter's CellProfiler (5 or 4.2), on 200 x 200 crops of two MIBI images:

1. ``train_model.cppipe`` (training shortened) trains and saves ``impartial_model.safetensors`` in
   the output folder and exports the objects of that single run (``Train_Nuclei.csv``).
2. ``apply_model_batch.cppipe`` ("Use a saved model", ends in CreateBatchFiles) writes
   ``Batch_data.h5`` into the same folder; CellProfiler exits 1 there by design.
3. Two workers run in parallel: ``-p Batch_data.h5 -f 1 -l 1`` and ``-f 2 -l 2``. They write one
   CSV per image set (``Apply_Nuclei_<ImageID>.csv``), so they never write the same file.

4. CreateBatchFiles added to ``train_model.cppipe`` itself: the batch file is written without
   training; a worker without the model file says how to make one; with it, it only loads it.

Asserts: the batch file exists; each worker's CSV has the same nuclei (count and centres) as the
single training run; no worker trained (no training line in their logs, each logs loading the
model file, the model file's mtime and size unchanged, no backup model written).
"""
import time

import numpy as np
import pytest

pytest.importorskip("cellprofiler_core")
pytest.importorskip("torch")

from tests import helpers_cp as H  # noqa: E402

pytestmark = pytest.mark.skipif(not H.cellprofiler_executable().exists(),
                                reason="no cellprofiler executable next to %s" % H.cellprofiler_executable().parent)

MODEL = "impartial_model.safetensors"


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch")
    inputs = H.write_mibi_crops(tmp / "in")
    out = tmp / "out"
    result = {"out": out, "tmp": tmp, "timings": {}}

    pipeline, problems = H.load_pipeline(H.PIPELINES / "train_model.cppipe")
    assert not problems
    H.set_values(H.module(pipeline, "ImPartial"), **H.FAST_TRAINING)
    train = H.write_pipeline(pipeline, tmp / "train_fast.cppipe")
    rc, log, seconds = H.run_cellprofiler(["-c", "-r", "-p", train, "-i", inputs, "-o", out], tmp / "train.log")
    result.update(train_log=log, train_rc=rc)
    result["timings"]["train"] = seconds
    model = out / MODEL
    if not model.is_file():
        return result
    stat = model.stat()
    result["model_stat"] = (stat.st_mtime_ns, stat.st_size)

    rc, log, seconds = H.run_cellprofiler(
        ["-c", "-r", "-p", H.PIPELINES / "apply_model_batch.cppipe", "-i", inputs, "-o", out], tmp / "create.log")
    result.update(create_log=log, create_rc=rc)
    result["timings"]["create_batch"] = seconds
    if not (out / "Batch_data.h5").is_file():
        return result
    result["csv_after_create"] = sorted(p.name for p in out.glob("Apply_*.csv"))

    time.sleep(0.05)  # a model rewrite would show in the mtime
    start = time.monotonic()
    workers = []
    for number in (1, 2):
        log_path = tmp / ("worker%d.log" % number)
        proc, handle = H.popen_cellprofiler(
            ["-c", "-r", "-p", out / "Batch_data.h5", "-f", number, "-l", number], log_path)
        workers.append((proc, handle, log_path))
    result["worker_rc"], result["worker_logs"] = [], []
    for proc, handle, log_path in workers:
        try:
            result["worker_rc"].append(proc.wait(timeout=420))
        finally:
            if proc.poll() is None:
                proc.kill()
            handle.close()
        result["worker_logs"].append(log_path.read_text(errors="replace"))
    result["timings"]["workers"] = time.monotonic() - start
    print("batch timings (s): %s" % {k: round(v) for k, v in result["timings"].items()})
    return result


def test_batch_file_written(batch_run):
    out = batch_run["out"]
    assert (out / MODEL).is_file(), "training did not save a model:\n%s" % H.tail(batch_run.get("train_log", ""))
    assert (out / "Batch_data.h5").is_file(), "no Batch_data.h5:\n%s" % H.tail(batch_run.get("create_log", ""))
    import h5py

    assert h5py.is_hdf5(str(out / "Batch_data.h5"))
    # CreateBatchFiles stops the run after writing the batch file: no image set was processed
    assert batch_run["csv_after_create"] == [], batch_run["csv_after_create"]
    assert "ImPartial: training on" not in batch_run["create_log"]


def test_workers_do_not_train(batch_run):
    out = batch_run["out"]
    assert batch_run.get("worker_logs"), "the workers did not run (see test_batch_file_written)"
    for number, log in enumerate(batch_run["worker_logs"], start=1):
        assert "ImPartial: training on" not in log, "worker %d trained:\n%s" % (number, H.tail(log))
        assert "ImPartial training:" not in log
        assert "ImPartial: loaded the model" in log, "worker %d:\n%s" % (number, H.tail(log))
    stat = (out / MODEL).stat()
    assert (stat.st_mtime_ns, stat.st_size) == batch_run["model_stat"], "the model file was rewritten"
    assert not list(out.glob("*.bak.safetensors"))
    assert "ImPartial: training on 2 image set(s)" in batch_run["train_log"]


def test_workers_match_single_run(batch_run):
    out = batch_run["out"]
    assert batch_run.get("worker_logs"), "the workers did not run (see test_batch_file_written)"
    single = H.read_csv(out / "Train_Nuclei.csv")
    single_images = {r["ImageNumber"]: r["Metadata_ImageID"] for r in H.read_csv(out / "Train_Image.csv")}
    assert sorted(single_images.values()) == ["0", "3"]
    for number, image_id in enumerate(["0", "3"], start=1):
        image_csv, nuclei_csv = out / ("Apply_Image_%s.csv" % image_id), out / ("Apply_Nuclei_%s.csv" % image_id)
        log = batch_run["worker_logs"][number - 1]
        assert image_csv.is_file() and nuclei_csv.is_file(), "worker %d wrote no CSV:\n%s" % (number, H.tail(log))
        images = H.read_csv(image_csv)
        assert [r["Metadata_ImageID"] for r in images] == [image_id]  # the worker ran its image set only
        worker = H.read_csv(nuclei_csv)
        reference = [r for r in single if single_images[r["ImageNumber"]] == image_id]
        assert int(float(images[0]["Count_Nuclei"])) == len(worker) == len(reference) > 10
        for name in ("Location_Center_X", "Location_Center_Y", "AreaShape_Area"):
            if name in reference[0]:
                a = np.array(sorted(H.column(worker, name)))
                b = np.array(sorted(H.column(reference, name)))
                assert np.allclose(a, b, atol=1e-3), (image_id, name)
        key = lambda r: (round(float(r["Location_Center_X"]), 3), round(float(r["Location_Center_Y"]), 3))  # noqa: E731
        assert sorted(map(key, worker)) == sorted(map(key, reference))
        for name in ("ImPartial_MeanForegroundProbability",):
            assert np.allclose(sorted(H.column(worker, name)), sorted(H.column(reference, name)), atol=1e-4)


def test_batch_file_made_from_a_training_pipeline(batch_run):
    """CreateBatchFiles added to the *training* pipeline: creating the batch file trains nothing;
    a worker without the model file stops with the message that says what to do; with the model
    file (trained on the workstation) it loads it, never trains, and finds the same nuclei."""
    import shutil

    out, tmp = batch_run["out"], batch_run["tmp"]
    assert (out / MODEL).is_file(), "no model from the training run (see test_batch_file_written)"
    inputs, cluster_out = tmp / "in", tmp / "out_training_batch"
    pipeline, problems = H.load_pipeline(H.PIPELINES / "train_model.cppipe")
    assert not problems
    H.set_values(H.module(pipeline, "ImPartial"), **H.FAST_TRAINING)
    batch = H.add_module(pipeline, "CreateBatchFiles", wants_default_output_directory=True, remote_host_is_windows=False)
    batch.mappings[0].local_directory.value = str(tmp)
    batch.mappings[0].remote_directory.value = str(tmp)
    path = H.write_pipeline(pipeline, tmp / "train_then_batch.cppipe")
    _, log, _ = H.run_cellprofiler(["-c", "-r", "-p", path, "-i", inputs, "-o", cluster_out], tmp / "create_training.log")
    assert (cluster_out / "Batch_data.h5").is_file(), H.tail(log)
    assert "ImPartial: training on" not in log and not (cluster_out / MODEL).exists()

    worker = ["-c", "-r", "-p", cluster_out / "Batch_data.h5", "-f", 1, "-l", 1]
    _, log, _ = H.run_cellprofiler(worker, tmp / "worker_without_model.log")
    assert "Cluster jobs never train" in log and str(cluster_out / MODEL) in log, H.tail(log)
    assert "ImPartial: training on" not in log and not (cluster_out / MODEL).exists()
    assert not (cluster_out / "Train_Nuclei.csv").exists()

    shutil.copy2(out / MODEL, cluster_out / MODEL)
    stat = (cluster_out / MODEL).stat()
    _, log, _ = H.run_cellprofiler(worker, tmp / "worker_with_model.log")
    assert "running as a cluster job" in log and "ImPartial: loaded the model" in log, H.tail(log)
    assert "ImPartial: training on" not in log
    after = (cluster_out / MODEL).stat()
    assert (after.st_mtime_ns, after.st_size) == (stat.st_mtime_ns, stat.st_size), "the worker rewrote the model"
    images = H.read_csv(cluster_out / "Train_Image.csv")
    assert [r["Metadata_ImageID"] for r in images] == ["0"]
    single_images = {r["ImageNumber"]: r["Metadata_ImageID"] for r in H.read_csv(out / "Train_Image.csv")}
    reference = [r for r in H.read_csv(out / "Train_Nuclei.csv") if single_images[r["ImageNumber"]] == "0"]
    nuclei = H.read_csv(cluster_out / "Train_Nuclei.csv")
    assert int(float(images[0]["Count_Nuclei"])) == len(nuclei) == len(reference) > 10


def test_groups_train_and_load_one_model_each(tmp_path):
    """With Groups (one group per image here) each group trains on its own image sets and saves
    its own model file, named after the group; a cluster job for one group (the switches written
    as ``-f2 -l2``, which CellProfiler also accepts) loads that group's file and trains nothing."""
    from impartial_core.model import ImPartialModel

    inputs, out = H.write_mibi_crops(tmp_path / "in"), tmp_path / "out"
    pipeline, problems = H.load_pipeline(H.PIPELINES / "train_model.cppipe")
    assert not problems
    H.set_values(H.module(pipeline, "ImPartial"), **dict(H.FAST_TRAINING, max_iterations=40))
    groups = H.module(pipeline, "Groups")
    groups.wants_groups.value = True
    groups.grouping_metadata[0].metadata_choice.value = "ImageID"
    path = H.write_pipeline(pipeline, tmp_path / "train_groups.cppipe")
    _, log, _ = H.run_cellprofiler(["-c", "-r", "-p", path, "-i", inputs, "-o", out], tmp_path / "groups.log")
    files = {image_id: out / ("impartial_model_ImageID-%s.safetensors" % image_id) for image_id in ("0", "3")}
    assert all(f.is_file() for f in files.values()), H.tail(log)
    assert not (out / MODEL).exists()
    assert log.count("ImPartial: training on 1 image set(s)") == 2, H.tail(log)
    fingerprints = {i: ImPartialModel.read_metadata(f)["training_data_fingerprint"] for i, f in files.items()}
    assert fingerprints["0"] != fingerprints["3"]
    applied = {r["Metadata_ImageID"]: r["ImPartial_ModelFingerprint"] for r in H.read_csv(out / "Train_Image.csv")}
    assert {i: fingerprints[i][: len(applied[i])] for i in applied} == applied, (applied, fingerprints)

    stat = files["3"].stat()
    _, log, _ = H.run_cellprofiler(["-c", "-r", "-p", path, "-i", inputs, "-o", out, "-f2", "-l2"],
                                   tmp_path / "group_job.log")
    assert "running as a cluster job" in log and "loaded the model %s" % files["3"] in log, H.tail(log)
    assert "ImPartial: training on" not in log
    assert (files["3"].stat().st_mtime_ns, files["3"].stat().st_size) == (stat.st_mtime_ns, stat.st_size)
    assert [r["Metadata_ImageID"] for r in H.read_csv(out / "Train_Image.csv")] == ["3"]
