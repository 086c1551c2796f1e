#!/usr/bin/env python
"""Build the shared CellProfiler pipelines in pipelines/ with cellprofiler_core itself.

    python3 scripts/make_pipelines.py              # build with .venv (CP 5), check in both venvs
    .venv/bin/python scripts/make_pipelines.py --line cp5 --out DIR    # build only, into DIR

CellProfiler writes every file (``Pipeline.dump``), nothing is typed by hand, so module revisions
and setting values are exactly what CellProfiler expects.

Which CellProfiler saves them (decided by testing, see pipelines/README.md): **CellProfiler 5**.
Files saved by 5.0.0.dev784 load without any warning in both 4.2.8.1 and 5, and 4.2 reads every
setting as it would save it itself (checked here: load in 4.2, save, compare with 4.2's own build
of the same pipeline: identical). Files saved by 4.2 load in 5 with the same settings but with a
logged warning ("Your pipeline version is 4281 but you are running CellProfiler version 500").
The check (default after building) fails on any load error or logged warning in either line and on
any difference in the 4.2 comparison. Without .venv the files are saved by 4.2 instead.

Pipelines (all read the bundled data in examples/data; run headless with
``cellprofiler -c -r -p PIPELINE -i INPUT_FOLDER -o OUTPUT_FOLDER --plugins-directory plugins``,
adding ``-e imageio_reader`` in CellProfiler 5 for TIFF):

- ``nuclei_mibi.cppipe`` (input examples/data/mibi_dsdna): nuclei from the paper's n100 scribbles
  on the MIBI dsDNA channel; ImPartial trains in the pipeline; MeasureObjectSizeShape,
  MeasureObjectIntensity, OverlayOutlines + SaveImages (overlay PNGs), ConvertObjectsToImage +
  SaveImages (16-bit label TIFFs), ExportToSpreadsheet.
- ``cells_vectra.cppipe`` (input examples/data/vectra_2ch, per-channel files made by
  examples/make_vectra_inputs.py): nuclei, cells and cytoplasm from PanCK + DAPI;
  MeasureObjectSizeShape, MeasureObjectIntensity (both channels, all three object sets),
  RelateObjects (Cells -> Nuclei, with per-cell means), ExportToSpreadsheet.
- ``train_model.cppipe`` (input examples/data/mibi_dsdna): trains the MIBI nuclei model and saves
  ``impartial_model.safetensors`` in the Default Output Folder; exports counts (``Train_*.csv``).
- ``apply_model_batch.cppipe`` (input examples/data/mibi_dsdna): "Use a saved model" (the file
  above, in the Default Output Folder), measurements, ExportToSpreadsheet with one file per image
  set (``Apply_Image_<ImageID>.csv`` ...: cluster jobs never write the same file), CreateBatchFiles.
- ``draw_nuclei.cppipe`` (input examples/data/mibi_dsdna, the images only): scribbles drawn in the
  module's editor (scribble folder ``scribbles/`` in the Default Output Folder); ImPartial trains
  in the pipeline; MeasureObjectSizeShape, ConvertObjectsToImage + SaveImages, ExportToSpreadsheet.
"""
import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS = os.path.join(REPO, "plugins")
PIPELINES_DIR = os.path.join(REPO, "pipelines")
VENVS = {"cp5": os.path.join(REPO, ".venv"), "cp42": os.path.join(REPO, ".venv-cp42")}
sys.path.insert(0, REPO)
from impartial_cellprofiler.pipelines import (  # noqa: E402
    add_module, new_pipeline, setting_groups, start_headless, write_pipeline,
)


def current_line():
    import cellprofiler_core

    return "cp42" if cellprofiler_core.__version__.startswith("4.") else "cp5"

# NamesAndTypes rules (CellProfiler's filter syntax)
MIBI_IMAGE_RULE = 'and (file does containregexp "^image[0-9]+\\.tif$")'
MIBI_SCRIBBLE_RULE = 'and (file does contain "_scribbles_n100.tif")'
MIBI_REGEXP = "^image(?P<ImageID>[0-9]+)"
VECTRA_REGEXP = "^image(?P<ImageID>[0-9]+)_"


def add_impartial(pipeline, channels, segment, mode, nuclear_channel=1, scribbles="Scribbles"):
    module = add_module(pipeline, "ImPartial")
    for group, name in zip(setting_groups(module, "channels", "add_channel", len(channels)), channels):
        group.image_name.value = name
    module.nuclear_channel.value = nuclear_channel
    module.scribble_image.value = scribbles
    module.segment_choice.value = segment
    module.model_mode.value = mode
    return module


def add_export(pipeline, prefix=None, per_image_set_objects=None):
    """ExportToSpreadsheet: everything in one file per object (or one file per object and image set)."""
    module = add_module(pipeline, "ExportToSpreadsheet", wants_overwrite_without_warning=True, add_metadata=True,
                        wants_prefix=bool(prefix))
    if prefix:
        module.prefix.value = prefix
    if per_image_set_objects:
        # One file per object set and image set (metadata tag in the file name), so that cluster
        # jobs writing to the same folder never write the same file.
        module.wants_everything.value = False
        groups = setting_groups(module, "object_groups", "add_object_group", len(per_image_set_objects))
        for group, name in zip(groups, per_image_set_objects):
            group.name.value = name
            group.previous_file.value = False
            group.wants_automatic_file_name.value = False
            group.file_name.value = "%s_\\g<ImageID>.csv" % name
    return module


def add_save(pipeline, image, suffix, file_format, bit_depth, name_from="DNA"):
    return add_module(pipeline, "SaveImages", save_image_or_figure="Image", image_name=image,
                      file_name_method="From image filename", file_image_name=name_from, wants_file_name_suffix=True,
                      file_name_suffix=suffix, file_format=file_format, bit_depth=bit_depth, overwrite=True,
                      # CellProfiler 5.0.0.dev784 passes a compression argument its tifffile rejects
                      # ("COMPRESSION: invalid argument (8, 6)"): save TIFFs uncompressed.
                      tiff_compress=False)


def nuclei_mibi():
    pipeline = new_pipeline(MIBI_REGEXP, [("DNA", MIBI_IMAGE_RULE), ("Scribbles", MIBI_SCRIBBLE_RULE)])
    add_impartial(pipeline, ["DNA"], "Nuclei", "Train in this pipeline")
    add_module(pipeline, "MeasureObjectSizeShape", objects_list=["Nuclei"], calculate_zernikes=False)
    add_module(pipeline, "MeasureObjectIntensity", images_list=["DNA"], objects_list=["Nuclei"])
    overlay = add_module(pipeline, "OverlayOutlines", image_name="DNA", output_image_name="NucleiOverlay",
                         wants_color="Color", line_mode="Inner")
    overlay.outlines[0].objects_name.value = "Nuclei"
    overlay.outlines[0].color.value = "Yellow"
    add_save(pipeline, "NucleiOverlay", "_nuclei_overlay", "png", "8-bit integer")
    add_module(pipeline, "ConvertObjectsToImage", object_name="Nuclei", image_name="NucleiLabels", image_mode="uint16")
    add_save(pipeline, "NucleiLabels", "_nuclei_impartial", "tiff", "16-bit integer")
    add_export(pipeline)
    return pipeline


def cells_vectra():
    pipeline = new_pipeline(VECTRA_REGEXP, [
        ("PanCK", 'and (file does contain "_PanCK.tif")'),
        ("DAPI", 'and (file does contain "_DAPI.tif")'),
        ("Scribbles", 'and (file does contain "_scribbles.tif")'),
    ])
    add_impartial(pipeline, ["PanCK", "DAPI"], "Nuclei, cells and cytoplasm", "Train in this pipeline",
                  nuclear_channel=2)
    objects = ["Nuclei", "Cells", "Cytoplasm"]
    add_module(pipeline, "MeasureObjectSizeShape", objects_list=objects, calculate_zernikes=False)
    add_module(pipeline, "MeasureObjectIntensity", images_list=["PanCK", "DAPI"], objects_list=objects)
    add_module(pipeline, "RelateObjects", x_name="Cells", y_name="Nuclei", wants_per_parent_means=True)
    add_export(pipeline)
    return pipeline


def train_model():
    pipeline = new_pipeline(MIBI_REGEXP, [("DNA", MIBI_IMAGE_RULE), ("Scribbles", MIBI_SCRIBBLE_RULE)])
    add_impartial(pipeline, ["DNA"], "Nuclei", "Train in this pipeline")
    add_export(pipeline, prefix="Train_")
    return pipeline


def apply_model_batch():
    pipeline = new_pipeline(MIBI_REGEXP, [("DNA", MIBI_IMAGE_RULE)])
    add_impartial(pipeline, ["DNA"], "Nuclei", "Use a saved model")
    add_module(pipeline, "MeasureObjectSizeShape", objects_list=["Nuclei"], calculate_zernikes=False)
    add_module(pipeline, "MeasureObjectIntensity", images_list=["DNA"], objects_list=["Nuclei"])
    add_export(pipeline, prefix="Apply_", per_image_set_objects=["Image", "Nuclei"])
    batch = add_module(pipeline, "CreateBatchFiles", wants_default_output_directory=True, remote_host_is_windows=False)
    # Path mapping placeholders (CellProfiler stores the saving user's home here): edit them to map
    # your workstation's data root to the cluster's (pipelines/README.md).
    batch.mappings[0].local_directory.value = "/path/on/this/computer"
    batch.mappings[0].remote_directory.value = "/path/on/the/cluster"
    batch.custom_output_directory.value = ""
    batch.default_image_directory.value = ""
    return pipeline


def draw_nuclei():
    """Nuclei from scribbles drawn in the module's editor: the MIBI images alone, no scribble files."""
    pipeline = new_pipeline(MIBI_REGEXP, [("DNA", MIBI_IMAGE_RULE)])
    impartial = add_impartial(pipeline, ["DNA"], "Nuclei", "Train in this pipeline")
    impartial.scribble_source.value = "Drawn in CellProfiler (scribble folder)"
    add_module(pipeline, "MeasureObjectSizeShape", objects_list=["Nuclei"], calculate_zernikes=False)
    add_module(pipeline, "ConvertObjectsToImage", object_name="Nuclei", image_name="NucleiLabels", image_mode="uint16")
    add_save(pipeline, "NucleiLabels", "_nuclei_impartial", "tiff", "16-bit integer")
    add_export(pipeline)
    return pipeline


PIPELINES = {
    "nuclei_mibi.cppipe": nuclei_mibi,
    "cells_vectra.cppipe": cells_vectra,
    "train_model.cppipe": train_model,
    "apply_model_batch.cppipe": apply_model_batch,
    "draw_nuclei.cppipe": draw_nuclei,
}

CHECK_CODE = r"""
import logging, os, sys, warnings
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="LOG %(levelname)s %(name)s: %(message)s")
sys.path.insert(0, sys.argv[1])
from impartial_cellprofiler.pipelines import load_pipeline, start_headless, write_pipeline
start_headless(os.path.join(sys.argv[1], "plugins"))
problems = 0
for path in sys.argv[2:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline, bad = load_pipeline(path)
    names = [m.module_name for m in pipeline.modules()]
    ok = not bad and not caught and len(names) > 4 and "ImPartial" in names
    problems += not ok
    if os.environ.get("_REDUMP_DIR"):  # re-save with this CellProfiler to compare settings
        write_pipeline(pipeline, os.path.join(os.environ["_REDUMP_DIR"], os.path.basename(path)))
    print("%s %s: %d modules (%s)%s%s" % ("OK  " if ok else "FAIL", os.path.basename(path), len(names),
          ", ".join(names[4:]), "".join("\n    load problem: %s" % getattr(e, "message", e) for e in bad),
          "".join("\n    warning: %s" % w.message for w in caught)))
sys.exit(1 if problems else 0)
"""


def python_of(line):
    return os.path.join(VENVS[line], "bin", "python")


def load_report(line, paths, redump_dir=None):
    """Load the pipelines in the venv of a CellProfiler line: (ok, report lines)."""
    env = dict(os.environ, JAVA_HOME=os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"))
    if redump_dir:
        env["_REDUMP_DIR"] = redump_dir
    result = subprocess.run([python_of(line), "-c", CHECK_CODE, REPO] + paths, capture_output=True, text=True,
                            env=env)
    lines = [l for l in (result.stdout + result.stderr).splitlines() if l.strip()]
    logged = [l for l in lines if l.startswith("LOG ")]  # CellProfiler logs load warnings
    return result.returncode == 0 and not logged, lines


def build(line, out, only=None):
    """Build the pipelines with this interpreter's CellProfiler into out."""
    start_headless(PLUGINS)
    import cellprofiler_core

    if current_line() != line:
        raise SystemExit("this Python runs CellProfiler %s, not %s" % (cellprofiler_core.__version__, line))
    os.makedirs(out, exist_ok=True)
    for name, builder in PIPELINES.items():
        if only and name not in only:
            continue
        pipeline = builder()
        path = write_pipeline(pipeline, os.path.join(out, name))
        print("wrote %s (CellProfiler %s): %s" % (os.path.relpath(path, REPO), cellprofiler_core.__version__,
                                                  ", ".join(m.module_name for m in pipeline.modules())))


def run_build(line, out, only):
    command = [python_of(line), os.path.abspath(__file__), "--line", line, "--out", out]
    subprocess.run(command + sum((["--only", o] for o in only or []), []), check=True)


def check(out, only):
    """Every file loads cleanly in both lines, and CellProfiler 4.2 reads the same settings as it would save."""
    import difflib
    import tempfile

    names = [n for n in PIPELINES if not only or n in only]
    paths = [os.path.join(out, n) for n in names]
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for line in VENVS:
            if not os.path.exists(python_of(line)):
                print("== %s: no venv, not checked" % line)
                continue
            redump = os.path.join(tmp, "redump-" + line)
            os.makedirs(redump)
            ok, lines = load_report(line, paths, redump)
            print("== loaded in %s: %s" % (line, "clean" if ok else "PROBLEMS"))
            for l in lines:
                print("   " + l)
            failed |= not ok
        if os.path.exists(python_of("cp42")) and os.path.exists(python_of("cp5")):
            # The files are saved by CellProfiler 5; 4.2 must read every setting as 4.2 itself saves it.
            own = os.path.join(tmp, "own-cp42")
            run_build("cp42", own, only)
            for name in names:
                a = open(os.path.join(own, name)).read().splitlines()
                b = open(os.path.join(tmp, "redump-cp42", name)).read().splitlines()
                diff = list(difflib.unified_diff(a, b, "saved by 4.2", "saved by 5, loaded and saved by 4.2", lineterm=""))
                print("== %s: %s" % (name, "CellProfiler 4.2 reads the settings it would save itself" if not diff else
                                     "CellProfiler 4.2 reads OTHER settings than it saves:"))
                for l in diff[:40]:
                    print("   " + l)
                failed |= bool(diff)
    return not failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line", choices=sorted(VENVS), help="build with this interpreter's CellProfiler only")
    parser.add_argument("--out", default=PIPELINES_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("--only", action="append", help="build only this file name (repeatable)")
    parser.add_argument("--no-check", action="store_true", help="do not load the files afterwards")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    if args.line:
        build(args.line, out, args.only)
        return 0
    line = "cp5" if os.path.exists(python_of("cp5")) else "cp42"
    if line != "cp5":
        print("no CellProfiler 5 venv: saving with 4.2 (CellProfiler 5 then warns about the pipeline version)")
    run_build(line, out, args.only)
    if not args.no_check and not check(out, args.only):
        print("check FAILED")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
