"""Scribble files kept by the module: naming, reading (also Fiji/napari labels), atomic writes, backups."""
import datetime
import os

import numpy as np
import pytest
import tifffile

from impartial_core import scribble_files as sf
from impartial_core.scribbles import SPLIT


def _scribbles():
    array = np.zeros((6, 7), np.uint8)
    array[1, 1:5] = 1
    array[3, 2] = 2
    array[4, 4:6] = 3
    array[5, 0:3] = SPLIT
    return array


def test_file_is_named_after_the_image_file():
    assert sf.scribble_file_name("/data/plate1/A01_w1.tif") == "A01_w1_scribbles.tif"
    assert sf.scribble_file_name("B02.ome.tiff") == "B02_scribbles.tif"
    assert sf.scribble_file_name("2024.01.05_A01.PNG") == "2024.01.05_A01_scribbles.tif"
    assert sf.scribble_file_path("/scr", "/data/x.tif") == sf.Path("/scr/x_scribbles.tif")
    with pytest.raises(ValueError, match="no file name"):
        sf.scribble_file_name("")


def test_missing_file_means_no_scribbles(tmp_path):
    assert sf.read_scribble_file(tmp_path / "none_scribbles.tif", (6, 7)) is None


def test_write_then_read_round_trip_with_all_values(tmp_path):
    path = sf.scribble_file_path(tmp_path, "img.tif")
    written, backup = sf.write_scribble_file(path, _scribbles(), (6, 7))
    assert written and backup is None
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].dtype == np.uint8
    read = sf.read_scribble_file(path, (6, 7))
    assert read.dtype == np.uint8
    np.testing.assert_array_equal(read, _scribbles())
    # a leading singleton axis (as some readers return) is accepted, and writes the same 2-D file
    assert sf.write_scribble_file(path, _scribbles()[None]) == (False, None)
    np.testing.assert_array_equal(read, _scribbles())
    assert [p.name for p in tmp_path.iterdir()] == ["img_scribbles.tif"]  # no temporary file left


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_labels_saved_by_other_programs_are_read(tmp_path, dtype):
    """Fiji/napari save labels as 8- or 16-bit TIFFs, sometimes with a leading singleton axis."""
    path = tmp_path / "img_scribbles.tif"
    tifffile.imwrite(path, _scribbles().astype(dtype)[None])
    np.testing.assert_array_equal(sf.read_scribble_file(path, (6, 7)), _scribbles())


def test_bad_files_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "img_scribbles.tif"
    tifffile.imwrite(path, np.full((6, 7), 255, np.uint8))
    with pytest.raises(ValueError, match=r"img_scribbles\.tif.*\[255\].*4 split stroke"):
        sf.read_scribble_file(path, (6, 7))
    tifffile.imwrite(path, np.zeros((5, 7), np.uint8))
    with pytest.raises(ValueError, match=r"img_scribbles\.tif.*shape \(5, 7\).*\(6, 7\)"):
        sf.read_scribble_file(path, (6, 7))
    path.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=r"img_scribbles\.tif"):
        sf.read_scribble_file(path, (6, 7))
    (tmp_path / "dir_scribbles.tif").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        sf.read_scribble_file(tmp_path / "dir_scribbles.tif", (6, 7))


def test_writing_refuses_bad_scribbles_and_missing_folders(tmp_path):
    path = tmp_path / "img_scribbles.tif"
    with pytest.raises(ValueError, match=r"img_scribbles\.tif.*\[7\]"):
        sf.write_scribble_file(path, np.full((6, 7), 7, np.uint8))
    with pytest.raises(ValueError, match="shape"):
        sf.write_scribble_file(path, _scribbles(), (7, 6))
    with pytest.raises(ValueError, match="folder .* does not exist"):
        sf.write_scribble_file(tmp_path / "missing" / "x_scribbles.tif", _scribbles())
    assert not list(tmp_path.iterdir())


def test_replacing_keeps_the_earlier_file_as_a_dated_backup(tmp_path):
    path = tmp_path / "img_scribbles.tif"
    first = _scribbles()
    sf.write_scribble_file(path, first)
    assert sf.write_scribble_file(path, first) == (False, None)  # same scribbles: nothing written
    second = first.copy()
    second[0, :] = 2
    written, backup = sf.write_scribble_file(path, second)
    assert written and backup is not None and backup.parent == tmp_path
    assert backup.name.startswith("img_scribbles.") and backup.name.endswith(".bak.tif")
    np.testing.assert_array_equal(sf.read_scribble_file(backup, (6, 7)), first)
    np.testing.assert_array_equal(sf.read_scribble_file(path, (6, 7)), second)
    # a third save in the same second gets its own backup name
    third = second.copy()
    third[2, :] = 1
    _, backup2 = sf.write_scribble_file(path, third)
    assert backup2 != backup and backup.exists() and backup2.exists()
    np.testing.assert_array_equal(sf.read_scribble_file(backup2, (6, 7)), second)


def test_a_foreign_unreadable_file_is_kept_before_being_replaced(tmp_path):
    path = tmp_path / "img_scribbles.tif"
    path.write_bytes(b"somebody's notes")
    _, backup = sf.write_scribble_file(path, _scribbles())
    assert backup.read_bytes() == b"somebody's notes"


def test_failed_write_leaves_the_earlier_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "img_scribbles.tif"
    sf.write_scribble_file(path, _scribbles())
    before = path.read_bytes()

    def full_disk(file, data, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("impartial_core.imageio.tifffile.imwrite", full_disk)
    with pytest.raises(ValueError, match=r"could not write the scribble file .*img_scribbles\.tif.*space"):
        sf.write_scribble_file(path, np.zeros((6, 7), np.uint8))
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_dated_backup_names_keep_the_suffix():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert sf.dated_backup_path("/m/model.safetensors", when).name == "model.20260102-030405.bak.safetensors"
    assert sf.dated_backup_path("/m/a.ome.tif", when).name == "a.20260102-030405.bak.ome.tif"


def test_keep_dated_backup_copies_and_skips_missing(tmp_path):
    assert sf.keep_dated_backup(tmp_path / "none.safetensors") is None
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights")
    os.utime(model, (1_000_000_000, 1_000_000_000))
    backup = sf.keep_dated_backup(model)
    assert backup.read_bytes() == b"weights" and model.read_bytes() == b"weights"
    assert backup.stat().st_mtime == 1_000_000_000  # a copy with its date, not a new file
