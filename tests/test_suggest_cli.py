"""``impartial suggest``: the CSV contract (image,row,col first, best first) and its refusals."""
import csv

import numpy as np
import tifffile

from .test_cli_outputs import _image, _model, _run


def test_suggest_writes_places_best_first(tmp_path, capsys):
    model = _model(tmp_path)
    images = [_image(tmp_path / "in" / "a.tif", seed=1), _image(tmp_path / "in" / "b.tif", seed=2)]
    out = tmp_path / "places.csv"
    status, stdout, stderr = _run(capsys, "suggest", "--model", model, "--image", images[0], "--image", images[1],
                                  "--count", 3, "--window", 8, "--out", out)
    assert status == 0, stderr
    rows = list(csv.DictReader(open(out, newline="")))
    assert list(rows[0])[:3] == ["image", "row", "col"]
    assert 1 <= len(rows) <= 3
    assert {r["image"] for r in rows} <= {str(p) for p in images}
    assert all(0 <= int(r["row"]) < 32 and 0 <= int(r["col"]) < 32 for r in rows)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert {r["kind"] for r in rows} <= {"uncertain", "split"}
    # an existing CSV is kept unless --overwrite
    status, _, stderr = _run(capsys, "suggest", "--model", model, "--image", images[0], "--out", out)
    assert status == 2 and str(out) in stderr and "--overwrite" in stderr


def test_suggest_refuses_scribbles_that_do_not_match_the_images(tmp_path, capsys):
    model = _model(tmp_path)
    image = _image(tmp_path / "a.tif")
    scribbles = tmp_path / "a_scribbles.tif"
    tifffile.imwrite(scribbles, np.zeros((16, 16), np.uint8))
    status, _, stderr = _run(capsys, "suggest", "--model", model, "--image", image, "--scribbles", scribbles,
                             "--out", tmp_path / "p.csv")
    assert status == 2 and str(scribbles) in stderr and "16x16" in stderr
    status, _, stderr = _run(capsys, "suggest", "--model", model, "--image", image, "--scribbles", scribbles,
                             "--scribbles", scribbles, "--out", tmp_path / "p.csv")
    assert status == 2 and "one --scribbles per --image" in stderr
    assert not (tmp_path / "p.csv").exists()


def test_suggest_takes_a_nuclear_channel_for_cells_only_models_alone(tmp_path, capsys):
    image, cells = _image(tmp_path / "a.tif"), _model(tmp_path, "cells")
    status, _, stderr = _run(capsys, "suggest", "--model", _model(tmp_path), "--image", image, "--nuclear-channel", 0,
                             "--out", tmp_path / "p.csv")
    assert status == 2 and "--nuclear-channel is for cells-only models" in stderr
    status, _, stderr = _run(capsys, "suggest", "--model", cells, "--image", image,
                             "--nuclear-channel", 1, "--out", tmp_path / "p.csv")
    assert status == 2 and "--nuclear-channel 1" in stderr and "1 channel(s)" in stderr
    assert not (tmp_path / "p.csv").exists()
    status, _, stderr = _run(capsys, "suggest", "--model", cells, "--image", image,
                             "--nuclear-channel", 0, "--count", 2, "--window", 8, "--out", tmp_path / "p.csv")
    assert status == 0, stderr
    assert (tmp_path / "p.csv").read_text().startswith("image,row,col")
