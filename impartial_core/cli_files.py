"""The command line's checks of its files and options: what ``impartial`` refuses before any work.

Output files are never written over unless impartial wrote them (or ``--overwrite``), two inputs may
not write the same outputs, a model's destination must be writable; each refusal is a
:class:`CliError`, one line naming the option at fault.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .imageio import image_stem, written_by_impartial


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse to replace a user's file unless ``overwrite``.

    Output files this package wrote itself (a re-run's earlier outputs) are replaced; any other file
    of the same name, e.g. labels corrected by hand and saved over an output, is not.
    """
    if overwrite:
        return
    existing = [path for path in paths if path.exists() and not written_by_impartial(path)]
    if existing:
        others = f", as do {len(existing) - 1} other output file(s)" if len(existing) > 1 else ""
        raise CliError(f"the output file {existing[0]} already exists and was not written by impartial{others}; "
                       f"use --overwrite to replace {'them' if others else 'it'}")


def output_path(out_dir: Path, stem: str, part: str) -> Path:
    """Where the ``part`` output (e.g. ``nuclei``) of the input named ``stem`` goes."""
    return out_dir / f"{stem}_{part}.tif"


def output_stems(inputs: Sequence[str], parts: Sequence[str], out_dir: Path, overwrite: bool) -> List[str]:
    """The stem naming each input's outputs ``out_dir/<stem>_<part>.tif``, all checked before any work.

    Refuses an --out-dir that is a file; two inputs that would write the same files (the stem is the
    file name without its folder and image suffix, so ``plate1/A01.tif`` and ``plate2/A01.tif``
    clash; compared ignoring case, as macOS and Windows disks do); an output that is one of the
    inputs; and files of those names that impartial did not write, unless ``overwrite``.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out-dir {out_dir} is a file, not a folder")
    stems = [image_stem(path) for path in inputs]
    first: Dict[str, int] = {}
    for index, (path, stem) in enumerate(zip(inputs, stems)):
        earlier = inputs[first.setdefault(stem.casefold(), index)]
        if first[stem.casefold()] == index:
            continue
        if earlier == path:
            raise CliError(f"{path} is given twice")
        raise CliError(f"{earlier} and {path} would both write {output_path(out_dir, stem, '*')}; "
                       f"rename one of them, or run them separately with different --out-dir folders")
    outputs = [output_path(out_dir, stem, part) for stem in stems for part in parts]
    sources = {Path(path).resolve() for path in inputs}
    clobbered = [path for path in outputs if path.resolve() in sources]
    if clobbered:
        raise CliError(f"{clobbered[0]} would replace one of the input images; choose another --out-dir")
    refuse_existing(outputs, overwrite)
    return stems


def check_model_destination(path: Path) -> None:
    """Refuse a model path that could not be saved to, before minutes of training are spent."""
    if path.is_dir():
        raise CliError(f"--model {path} is a folder; give a file name such as {path / 'model.safetensors'}")
    folder = path.parent
    if not folder.is_dir():
        raise CliError(f"cannot save the model {path}: the folder {folder} does not exist (or is not a folder)")
    if not os.access(folder, os.W_OK):
        raise CliError(f"cannot save the model {path}: the folder {folder} is not writable")


def parse_mapping(text: Optional[str]) -> Optional[Dict[int, int]]:
    """'4:1,5:2' -> {4: 1, 5: 2}."""
    if not text:
        return None
    try:
        return {int(a): int(b) for a, b in (pair.split(":") for pair in text.split(","))}
    except ValueError:
        raise CliError(f"--remap must look like '4:1,5:2' (value:class pairs), got {text!r}")
