"""The help of the ImPartial module, as CellProfiler shows it (reStructuredText, like its own modules)."""

MODULE_HELP = """
ImPartial
=========

**ImPartial** segments nuclei, or nuclei with their whole cells and cytoplasm, after learning
from a few **scribbles**: strokes that mark some background, some nuclei and (for cells) some
cytoplasm. It trains a small neural network inside the pipeline on the scribbled image sets of a
group (and up to 8 unscribbled ones: it also learns from unscribbled pixels by a self-supervised
loss), saves it as a model file, and applies it to every image set.

|

============ ============ ===============
Supports 2D? Supports 3D? Respects masks?
============ ============ ===============
YES          NO           NO
============ ============ ===============

What do I need as input?
^^^^^^^^^^^^^^^^^^^^^^^^

-  One or more grey-level **channel images** of the same size (e.g. a DNA stain, and for cells
   a membrane or cytoplasm marker). Mark which channel is the nuclear stain.
-  A **scribble image** of the same size for each image set, loaded in *NamesAndTypes* as a
   grey-level image: 0 = not annotated, and one value each for background, nucleus and
   cytoplasm (1, 2 and 3 by default; set other values in the module). Draw scribbles in any
   paint program or Fiji (a label image saved as TIFF or PNG). Image sets whose scribble image
   is all 0 are still segmented and still help training. Scribbles must mark at least some
   background and some nuclei (and some cytoplasm to train cells) somewhere in the group.
-  No illumination correction is needed for ImPartial itself: training shows the network its
   patches under random smooth hazes, and the nuclear stain's slowly varying background is
   subtracted before nuclei are seeded, so a haze or uneven illumination that differs between
   images costs little (measured on held-out fields with a haze as bright as the stain: cells
   F1@0.5 0.89-0.92, against 0.92 without the haze).

How many scribbles?
^^^^^^^^^^^^^^^^^^^

Measured on images never trained on: about 100 scribbled nuclei spread over the images (a stroke
through each nucleus, background strokes in clear gaps, never on the seam between touching
nuclei) give F1@0.5 about 0.69 on noisy MIBI tissue; for cells with a nuclear stain, about 30
scribbled cells (a stroke through each cell and one along its inside edge) give F1@0.5 0.92 on
cultured cells. A further 20 boxes of strokes where the editor suggests (N) added about 0.016
F1@0.5 on MIBI, boxes anywhere 0.006, both within the spread of retraining alone; on the cells,
nothing. So spread the first strokes widely, then draw split strokes across merged objects of
the image at hand (they divide objects there) and check the objects rather than add many more
strokes.

What do I get as output?
^^^^^^^^^^^^^^^^^^^^^^^^

-  *Nuclei*: nuclei objects (touching nuclei split unless switched off).
-  *Cells* and *Cytoplasm* (with "Nuclei, cells and cytoplasm"): each cell grown from its
   nucleus, and its cytoplasm (cell minus nucleus). Nucleus *n*, cell *n* and cytoplasm *n*
   have the same object number, as with IdentifySecondaryObjects and IdentifyTertiaryObjects, and
   the parent/child relationships are recorded (Cells are children of Nuclei; Cytoplasm is a
   child of both).
-  With "Cells only" and more than one channel: one nucleus per cell is found in the nuclear
   channel, the cells are grown from them, and *Nuclei*, *Cells* and *Cytoplasm* come out numbered
   and related as above. With one channel: *Cells* alone, split where the cell probability dips.
-  Optionally, the foreground probability and uncertainty maps as images (to save with
   *SaveImages*, or to threshold yourself).
-  The model file (safetensors weights + JSON metadata, never pickled), reusable with "Use a
   saved model" here or with the ``impartial`` command line.

Measurements made by this module
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

**Image measurements:**

-  *Count*: the number of objects of each object set.
-  *ImPartial_Threshold_<objects>*: the probability threshold used for the nuclei (and cells).
-  *ImPartial_ModelFingerprint*: the training-data fingerprint of the model applied.
-  *ImPartial_UsableInput*: 1 when the image set was segmented; 0 when a channel had nothing to
   segment (constant or nearly so, mostly at its maximum, mostly NaN, fewer than 8 grey levels,
   or an image under 16x16 pixels), in which case no objects are made, a warning is logged, and
   *ImPartial_InputProblem* says why. Use it with **FlagImage** to set such image sets aside.
   An image set like this that has scribbles stops training with an error naming its files; one
   without scribbles is left out of training.

**Object measurements** (for each object set):

-  *Location_Center_X*, *Location_Center_Y*, *Number_Object_Number*.
-  *ImPartial_MeanForegroundProbability*: mean foreground probability over the object (low
   values mark doubtful objects).
-  *ImPartial_MeanUncertainty*: mean uncertainty (binary entropy of the probability) over
   the object: where to scribble next.
-  *Parent_Nuclei* (Cells, Cytoplasm), *Parent_Cells* (Cytoplasm), *Children_Cells_Count*
   (Nuclei) and *Children_Cytoplasm_Count* (Nuclei, Cells).

Technical notes
^^^^^^^^^^^^^^^

**Training and the model file.** With "Train in this pipeline" the module is an aggregation
module, like CorrectIlluminationCalculate with "All: First cycle": before the first cycle of each
group it runs the modules above it over every image set of the group, collects the channels and
scribbles of the scribbled image sets (and of at most 8 others, so a plate of thousands of image
sets does not have to fit in memory), and trains. The model is cached by a fingerprint of the
images, scribbles and the settings that change what is learnt (not "Use a GPU", which changes
only where training runs): when the model file already holds a model of the same fingerprint it
is loaded instead (so Test mode, stepping through image sets and re-running the pipeline never
retrain), and the last few models of this CellProfiler session are kept in memory. When the model
file holds a *different* model (other images, scribbles or settings), it is never silently
replaced: it is kept as ``<name>.<date-time>.bak.safetensors`` next to it (the log says so) and
the new model is written in its place. The ``impartial train`` command line does the same with
``--overwrite``. Files are written atomically: a crash never leaves half a model.
With several groups (the Groups module), each group trains its own model and saves it under the
file name plus the group's metadata, e.g. ``impartial_model_Plate-P1.safetensors`` for plate P1;
cluster jobs load their own group's file.

**Fine-tuning.** "Fine-tune a saved model with these scribbles" starts from the saved model and
trains it further on this group's images and scribbles; the result goes to its own file (default
``impartial_model_finetuned.safetensors``), the starting model is not modified. Pixels the saved
model is sure of, away from your strokes, are kept as anchors during the fine-tune, so that it
learns the new strokes without losing what the model already got right.

**Cluster / batch processing.** Cluster jobs never train. A process knows it is a cluster job when
its pipeline was loaded from a *Batch_data.h5* (CreateBatchFiles; the pipeline is in batch
mode) or when its command line selects part of the image sets (``-f``/``-l`` or ``-g``). It
then loads the model file (for "Fine-tune", the fine-tuned file) and a missing file is an error
naming the setting. The workflow: (1) run the pipeline once on your workstation (or step through
Test mode) so the model is trained and saved; (2) add CreateBatchFiles, map the model folder's
local path to the cluster's path (the model folder is remapped like other folders); (3) submit
the jobs. Or choose "Use a saved model" for the cluster pipeline.

**Training time.** Training stops at the time budget (default 180 s, chosen for CPUs) or at the
maximum number of iterations, whichever comes first, and keeps the weights that did best on
held-aside scribbled pixels. A GPU is used when available and allowed. Headless runs log the
iteration, loss and estimated time left about every 10 seconds (logger name ``impartial``); the
GUI shows a progress dialog during Test mode training.

**Inputs.** Channels are normalised per image (percentiles 1 and 99.8, values beyond three
times that range clipped, so a hot camera pixel does not become an object), so any bit depth
works. 3-D images and masks are not supported.

Usage example
^^^^^^^^^^^^^

#. *Images*: drag in ``image0.tif`` … and their scribble images ``image0_scribbles.tif`` ….
#. *NamesAndTypes*: assign "DNA" to images whose name does not contain ``scribbles`` and
   "Scribbles" to those that do; match them by file name metadata.
#. *ImPartial*: channel "DNA", scribble image "Scribbles", segment "Nuclei", "Train in this
   pipeline", model folder "Default Output Folder".
#. *MeasureObjectSizeShape*, *ExportToSpreadsheet* as usual. Run Test mode to see the result,
   then add scribbles where the uncertainty is high and run again.

References
^^^^^^^^^^

-  Martinez N, Sapiro G, Tannenbaum A, Hollmann TJ, Nadeem S (2021) "ImPartial: Partial
   Annotations for Cell Instance Segmentation." *bioRxiv* 2021.01.20.427458.
   (`link <https://doi.org/10.1101/2021.01.20.427458>`__)
-  Krull A, Buchholz TO, Jug F (2019) "Noise2Void - Learning Denoising from Single Noisy
   Images." *CVPR*. (the blind-spot self-supervision ImPartial builds on)
"""


#: The help of each setting, by the name of the module attribute that holds it.
SETTING_HELP = {
    "nuclear_channel": (
        "The position, in the list of channel images above, of the nuclear stain (DNA, DAPI, "
        "Hoechst…). With nuclei (and cells), the nuclei are learnt from this channel and the cells "
        "from all channels. With *Cells only*, no nucleus is learnt: one nucleus per cell is found "
        "in this channel (threshold and split, as IdentifyPrimaryObjects does) and the cells are grown "
        "from them over the cell probability, as IdentifySecondaryObjects' propagation does; nuclei, "
        "cells and cytoplasm are made. Measured: better than splitting the cell mask alone on cultured "
        "cells with a clean DAPI (MP6843), worse on dim, noisy tissue DAPI (Vectra), where scribbling "
        "nuclei too (*Nuclei, cells and cytoplasm*) is the better choice."
    ),
    "scribble_image": (
        "The scribble image of each image set: a grey-level label image of the same size as the "
        "channels, loaded in NamesAndTypes. 0 means not annotated; the values below mark background, "
        "nuclei and cytoplasm. Save it as an unsigned 8- or 16-bit TIFF or PNG. When training, every "
        "image set needs one (an all-zero image where nothing is scribbled): NamesAndTypes drops "
        "image sets without it, and they are then not segmented either. To segment many images from a"
        " few scribbled ones, train once and apply the saved model (see the pipelines README)."
    ),
    "scribble_source": (
        "Where the scribbles come from:\n\n"
        "- *An image from NamesAndTypes*: a scribble image per image set, drawn in another program and "
        "loaded like the channels.\n"
        "- *Drawn in CellProfiler (scribble folder)*: one file per image set in the scribble folder below, "
        "named after the first channel's file (``A01.tif`` → ``A01_scribbles.tif``; uint8: 1 background, "
        "2 nucleus, 3 cytoplasm, 4 split stroke). In the GUI the module opens its scribble editor on each "
        "image set (Test mode, or Analyze Images); Save writes the file, keeping the earlier one as a dated "
        "backup, and refines the model with all strokes in about 20 seconds. Headless runs and cluster jobs "
        "read the files. An image set without a file has no scribbles; files made in Fiji or napari under "
        "that name are read (and can be edited) too."
    ),
    "scribble_folder": (
        "The folder of the scribble files (one per image set). By default a sub-folder *scribbles* of the "
        "Default Output Folder, beside the model file and out of the Images module's way. CreateBatchFiles "
        "remaps it like other folders."
    ),
    "open_editor": (
        "In the GUI, open the scribble editor on every image set the module runs on: in Test mode to draw, "
        "look at the objects and the uncertainty, and correct; set it to *No* to run Analyze Images over "
        "many image sets with the scribbles drawn so far. Headless runs never open it.\n\n"
        "Editor keys: 1-4 brushes (background, nucleus, cytoplasm, split stroke), E eraser, [ and ] brush "
        "size, Ctrl+Z / Ctrl+Y undo and redo, mouse wheel zoom, middle button pan, U uncertainty, O "
        "outlines, N next place to scribble, H help."
    ),
    "split_value": (
        "The value of split strokes in the scribble image: lines drawn where touching objects meet. They are "
        "neither background nor foreground (background strokes on such seams teach the network to drop dim "
        "nuclei); each object a split stroke crosses is divided along it on the image it was drawn on."
    ),
    "background_value": (
        "The value of background scribbles (outside every cell) in the scribble image."
    ),
    "nucleus_value": (
        "The value of nucleus scribbles in the scribble image."
    ),
    "cytoplasm_value": (
        "The value of cytoplasm scribbles (inside a cell, outside its nucleus). For nuclei they count"
        " as background."
    ),
    "segment_choice": (
        "- *Nuclei*: nuclei only (scribble background and nuclei).\n"
        "- *Nuclei, cells and cytoplasm*: nuclei, whole cells grown from them, and cytoplasm (scribble background, "
        "nuclei and cytoplasm; give a membrane or cytoplasm marker as a second channel).\n"
        "- *Cells only*: whole cells (scribble background and cells; nucleus and cytoplasm scribbles both "
        "count as cell). With one channel, cells are split only where the probability dips between "
        "them; with several, the nuclear stain channel seeds one cell per nucleus, and nuclei and "
        "cytoplasm are made too."
    ),
    "nuclei_name": (
        "Name of the nuclei objects."
    ),
    "cells_name": (
        "Name of the whole-cell objects."
    ),
    "cytoplasm_name": (
        "Name of the cytoplasm objects."
    ),
    "model_mode": (
        "- *Train in this pipeline*: train on the images and scribbles of each group before its first"
        " cycle, save the model file (a file holding a model trained on the same data and settings is"
        " loaded instead).\n"
        "- *Use a saved model*: apply the model file; no scribbles needed. Use this on a cluster.\n"
        "- *Fine-tune a saved model with these scribbles*: start from the model file and train it "
        "further with this group's scribbles (keeping, away from your strokes, what the model is sure of); "
        "the result is saved to its own file."
    ),
    "model_directory": (
        "The folder of the model file. CreateBatchFiles remaps it for the cluster like other folders."
    ),
    "model_file_name": (
        "The model file: written when training, read with a saved model, the starting point when "
        "fine-tuning."
    ),
    "fine_tuned_file_name": (
        "Where the fine-tuned model is saved (in the model folder). Must differ from the model file."
    ),
    "training_length": (
        "*%s*: training stops after the seconds you give (or at the maximum number of iterations):"
        " the best model the machine can train in that time, but a faster machine does more iterations,"
        " so the model (and the objects) differ between machines.\n\n"
        "*%s*: training runs the number of iterations you give, however long it takes (it may stop"
        " sooner when the loss on held-out scribbles stops improving, at the same iteration everywhere)."
        " Training then runs on 2 CPU threads (unless *CPU threads* says otherwise), because the number"
        " of threads changes the rounding of sums, which training amplifies. With the same images,"
        " scribbles, settings and seed, a CPU gives the same model whatever its speed and cores, in"
        " CellProfiler 4.2 and 5 alike (measured identical on the bundled example): use it"
        " for a pipeline you share, or a screen whose model must be the same on every machine. A CPU"
        " that computes bfloat16 natively (AVX-512 BF16) trains in it, twice as fast, and so gives"
        " another model than a CPU without. The default 3-minute budget runs 500-1200 iterations of"
        " the default network on 2 CPU cores in float32, about 1.7 times as many in bfloat16."
    ) % ("A time budget", "A fixed number of iterations (the same model on any machine)"),
    "time_budget": (
        "Training stops after this many seconds (or at the maximum number of iterations). 180 s gives"
        " good nuclei on a laptop CPU; a GPU does far more iterations in the same time."
    ),
    "show_advanced": (
        "Show the network, training and object settings."
    ),
    "network_width": (
        "Wider networks can learn more but train slower; 16 suits CPUs, 32 or 64 a GPU."
    ),
    "max_iterations": (
        "How many training iterations: with a time budget, the most that are run (the budget usually"
        " ends training first); with a fixed number of iterations, how many are run."
    ),
    "patch_size": (
        "Side of the square training patches; a multiple of 4, at most the image size."
    ),
    "batch_size": (
        "Patches per training iteration."
    ),
    "learning_rate": (
        "Adam learning rate."
    ),
    "seed": (
        "Seed of the training randomness. The same seed gives the same model on the CPU when training"
        " runs a fixed number of iterations (setting *Train for*); when a time budget ends it, the"
        " number of iterations (hence the model) depends on the machine's speed."
    ),
    "use_gpu": (
        "Train and predict on a CUDA or Apple GPU when there is one; otherwise the CPU."
    ),
    "cpu_threads": (
        "How many CPU threads training and prediction use in this process. *0* (automatic): the"
        " OMP_NUM_THREADS or SLURM_CPUS_PER_TASK environment variable when set; otherwise the CPUs this"
        " process may use (its CPU affinity, capped by a container's or scheduler's CPU quota), shared"
        " among the workers of an *Analyze Images* run, so that workers do not slow each other down by"
        " each running a thread per core. Set a number to override it."
    ),
    "threshold_automatic": (
        "*Yes*: use the threshold learnt at training (chosen on the scribbled pixels). *No*: enter "
        "one."
    ),
    "manual_threshold": (
        "Pixels whose foreground probability is above this are foreground."
    ),
    "min_size": (
        "Objects smaller than this (in pixels) are discarded."
    ),
    "split_touching": (
        "Split touching nuclei where their shape narrows (a watershed on the distance transform) "
        "and, when the nuclei probability is confident (most pixels near 0 or 1), where it has a "
        "valley: a textured nucleus whose outline has an inlet then stays whole. With \"Cells "
        "only\" and no nuclear channel: touching cells, where the cell probability has a valley. "
        "Cells grown from nuclei are always separated by their nuclei."
    ),
    "split_depth": (
        "Where touching nuclei are cut by their shape alone (the nuclei found in the nuclear channel"
        " with \"Cells only\", and nuclei on a probability map that is not confident), two nuclei are"
        " cut apart where the neck between them is at least this many pixels thinner than each of"
        " them. Lower cuts more. Which depth fits is a property of the images: measured on fields not"
        " trained on, the small traced cells of the Vectra tissue (touching stromal nuclei) scored"
        " mDICE 0.595 at 0.5, 0.572 at 1 and 0.543 at 2; the MP6843 cultured cells (nuclei that a"
        " shallow cut halves) F1@0.5 0.904, 0.911 and 0.923. Look at the nuclei of a few images:"
        " lower it where touching nuclei stay merged, raise it where single nuclei are cut in two."
    ),
    "fill_holes": (
        "Fill holes inside each object."
    ),
    "exclude_border": (
        "Discard objects that touch the image border (with cells, a cell, its nucleus and cytoplasm "
        "go together)."
    ),
    "save_probability": (
        "Add the foreground probability (0 to 1) of each task as an image."
    ),
    "nuclei_probability_name": (
        "Name of the nuclei foreground probability image."
    ),
    "cells_probability_name": (
        "Name of the whole-cell foreground probability image."
    ),
    "save_uncertainty": (
        "Add the uncertainty (binary entropy of the probability, 0 to 1) of each task as an image."
    ),
    "nuclei_uncertainty_name": (
        "Name of the nuclei uncertainty image."
    ),
    "cells_uncertainty_name": (
        "Name of the whole-cell uncertainty image."
    ),
    "image_name": (
        "A grey-level channel image. All channels of an image set must have the same size; the order "
        "of the channels must stay the same for a saved model."
    ),
}
