"""The values of the ImPartial module's choice settings.

They are written into saved pipelines (.cppipe) as they stand, so changing one is a change of the
module's settings format: it needs a new ``variable_revision_number`` and an upgrade step.
"""

SEG_NUCLEI = "Nuclei"
SEG_ALL = "Nuclei, cells and cytoplasm"
SEG_CELLS = "Cells only"
SEG_CHOICES = [SEG_NUCLEI, SEG_ALL, SEG_CELLS]
TASK_CHOICE = {SEG_NUCLEI: "nuclei", SEG_ALL: "nuclei+cells", SEG_CELLS: "cells"}  # impartial_core.config.tasks_for

SOURCE_IMAGE = "An image from NamesAndTypes"
SOURCE_FOLDER = "Drawn in CellProfiler (scribble folder)"  # impartial_cellprofiler.drawn_scribbles
SOURCE_CHOICES = [SOURCE_IMAGE, SOURCE_FOLDER]

MODE_TRAIN = "Train in this pipeline"
MODE_SAVED = "Use a saved model"
MODE_FINE_TUNE = "Fine-tune a saved model with these scribbles"
MODE_CHOICES = [MODE_TRAIN, MODE_SAVED, MODE_FINE_TUNE]

LENGTH_BUDGET = "A time budget"
LENGTH_ITERATIONS = "A fixed number of iterations (the same model on any machine)"
LENGTH_CHOICES = [LENGTH_BUDGET, LENGTH_ITERATIONS]
