"""Training: scribble + self-supervised losses, validation, early stopping, time budget, progress.

``train`` runs the loop; each of its concerns is a small piece of its own: ``EvaluationPlan``
(where validation and the threshold choice score the network), ``BestWeights`` (early stopping
and the best weights), ``TimeBudget`` (whether another iteration fits), ``LateReadBack`` (losses
read from an accelerator one iteration late) and ``ProgressLog`` (history and progress callback).
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .config import NetworkConfig, TaskSpec, TrainingConfig
from .devices import bfloat16_native, resolve_device
from .losses import UNLABELLED, reconstruction_loss, scribble_loss
from .masking import blind_spot_mask
from .network import ImPartialNet
from .prediction import predict_image
from .problems import InputError
from .sampling import PatchSampler, TrainingImage, prepare_training_images
from .scribbles.values import missing_classes
from .training_step import GraphedTrainingStep, TrainingStep

log = logging.getLogger(__name__)


class TrainingCancelled(Exception):
    """Raised by a progress callback to stop training; nothing is returned or saved."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the weights are garbage and are not returned."""


@dataclass
class TrainingProgress:
    """What a progress callback receives after each iteration."""

    iteration: int
    max_iterations: int
    losses: Dict[str, float]
    elapsed_s: float
    remaining_s: float
    best_validation: Optional[float] = None
    validation: Optional[float] = None

    @property
    def fraction(self) -> float:
        """Completed fraction, by iterations or by time, whichever is further along."""
        return min(1.0, max(self.iteration / self.max_iterations, self.elapsed_s / max(self.elapsed_s + self.remaining_s, 1e-9)))


@dataclass
class TrainingResult:
    """A trained network with its thresholds and the history of its training."""

    net: ImPartialNet
    thresholds: Dict[str, float]
    history: List[Dict[str, float]] = field(default_factory=list)
    iterations: int = 0
    elapsed_s: float = 0.0
    stopped_because: str = ""
    best_validation: Optional[float] = None


ProgressCallback = Callable[[TrainingProgress], None]


def _check_inputs(images: Sequence[np.ndarray], scribbles: Sequence[np.ndarray], tasks: Sequence[TaskSpec], n_channels: int) -> None:
    if len(images) != len(scribbles):
        raise ValueError(f"got {len(images)} image(s) but {len(scribbles)} scribble image(s)")
    if not images:
        raise ValueError("no training images given")
    for i, (image, scribble) in enumerate(zip(images, scribbles)):
        if image.ndim != 3 or image.shape[0] != n_channels:
            raise ValueError(f"training image {i + 1}: expected ({n_channels}, H, W), got {image.shape}")
        if scribble.shape != image.shape[1:]:
            raise ValueError(f"training image {i + 1}: scribbles are {scribble.shape[1]}x{scribble.shape[0]} pixels "
                             f"but the image is {image.shape[2]}x{image.shape[1]}")
    problems = missing_classes(scribbles, tasks)
    if problems:
        raise InputError(problems)


# Validation and the threshold choice score the network on the scribbled pixels, predicting only
# the image around them: an image whose scribbled blocks (of this grid) cover most of it is
# predicted whole, else those blocks are, each with a margin of image so its probabilities are the
# whole image's. Past a number of pixels, a seeded random choice of these windows is scored: a plate
# of large, lightly scribbled images costs a bounded time per evaluation, not a prediction of each.
EVALUATION_BLOCK = 256
WHOLE_IMAGE_ABOVE = 0.4
VALIDATION_PIXELS = 2 ** 20
THRESHOLD_PIXELS = 2 ** 22

Window = Tuple[int, slice, slice]   # image index, rows, columns


def evaluation_windows(targets: Sequence[np.ndarray], max_pixels: int, rng: np.random.Generator) -> List[Window]:
    """Where to predict to score the labelled pixels of ``targets`` (one (T, H, W) array per image)."""
    b = EVALUATION_BLOCK
    windows: List[Window] = []
    for index, target in enumerate(targets):
        labelled = (target != UNLABELLED).any(axis=0)
        h, w = labelled.shape
        padded = np.zeros((-(-h // b) * b, -(-w // b) * b), bool)
        padded[:h, :w] = labelled
        blocks = padded.reshape(padded.shape[0] // b, b, padded.shape[1] // b, b).any(axis=(1, 3))
        if blocks.mean() > WHOLE_IMAGE_ABOVE and h * w <= max_pixels:
            windows.append((index, slice(0, h), slice(0, w)))
        else:
            windows += [(index, slice(y * b, min(y * b + b, h)), slice(x * b, min(x * b + b, w)))
                        for y, x in np.argwhere(blocks)]
    area = [_window_pixels([window]) for window in windows]
    if sum(area) <= max_pixels:
        return windows
    chosen, total = [], 0
    for k in rng.permutation(len(windows)):
        if total + area[k] <= max_pixels or not chosen:
            chosen.append(k)
            total += area[k]
    return [windows[k] for k in sorted(chosen)]


def _window_pixels(windows: Sequence[Window]) -> int:
    return sum((ys.stop - ys.start) * (xs.stop - xs.start) for _, ys, xs in windows)


def _probabilities_at_scribbles(net: ImPartialNet, images: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                                windows: Sequence[Window], device: torch.device, mixed_precision: bool = True
                                ) -> Dict[int, List[Tuple[np.ndarray, np.ndarray]]]:
    """Per image index, per task: (foreground probability, target 0/1) at the labelled pixels of
    ``targets`` inside ``windows`` (predicted as :func:`.prediction.predict_image` does)."""
    context = 8 * net.multiple  # on the pooling grid, and beyond the depth-2 network's reach (~22 px)
    found: Dict[int, List[Tuple[List[np.ndarray], List[np.ndarray]]]] = {}
    for index, ys, xs in windows:
        image, target = images[index], targets[index]
        _, h, w = image.shape
        y0, x0 = max(ys.start - context, 0), max(xs.start - context, 0)
        maps = predict_image(net, image[:, y0:min(ys.stop + context, h), x0:min(xs.stop + context, w)], device=device,
                             mixed_precision=mixed_precision)
        inner = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
        per_task = found.setdefault(index, [([], []) for _ in net.tasks])
        for t, task in enumerate(net.tasks):
            here = target[t][ys, xs] != UNLABELLED
            per_task[t][0].append(maps[task.name].foreground_probability[inner][here])
            per_task[t][1].append(target[t][ys, xs][here])
    return {index: [(np.concatenate(p), np.concatenate(v)) for p, v in per_task] for index, per_task in found.items()}


def _scribble_loss(net: ImPartialNet, images: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                   windows: Sequence[Window], device: torch.device, mixed_precision: bool = True) -> Optional[float]:
    """Mean Brier loss on the labelled pixels in ``windows``, averaged over images, tasks and classes."""
    total, count = 0.0, 0
    for pairs in _probabilities_at_scribbles(net, images, targets, windows, device, mixed_precision).values():
        for p, target in pairs:
            for cls in (0, 1):
                sel = target == cls
                if sel.any():
                    total += float(((p[sel] - cls) ** 2).mean())
                    count += 1
    return total / count if count else None


def choose_thresholds(net: ImPartialNet, data: Sequence[TrainingImage], device: torch.device,
                      windows: Optional[Sequence[Window]] = None, mixed_precision: bool = True) -> Dict[str, float]:
    """Per task, the threshold in [0.3, 0.7] with the best class-balanced accuracy on the scribbles.

    Near-ties (within 0.005) are usual, since scribbles seldom touch object borders; they resolve
    to the lowest candidate: the widest objects that still keep the background scribbles out.
    ``windows`` (default: all scribbles, up to ``THRESHOLD_PIXELS``) says where they are scored.
    """
    targets = [d.all_targets for d in data]
    if windows is None:
        windows = evaluation_windows(targets, THRESHOLD_PIXELS, np.random.default_rng(0))
    found = _probabilities_at_scribbles(net, [d.image for d in data], targets, windows, device, mixed_precision)
    candidates = np.round(np.arange(0.3, 0.7001, 0.05), 2)
    thresholds = {}
    for t, task in enumerate(net.tasks):
        p = np.concatenate([np.zeros(0, np.float32)] + [pairs[t][0] for pairs in found.values()])
        target = np.concatenate([np.zeros(0, np.int8)] + [pairs[t][1] for pairs in found.values()])
        fg, bg = p[target == 1], p[target == 0]
        scores = [((fg > c).mean() if fg.size else 0) + ((bg <= c).mean() if bg.size else 0) for c in candidates]
        ties = candidates[np.asarray(scores) >= max(scores) - 0.01]  # scores sum two accuracies
        thresholds[task.name] = float(ties.min())
    return thresholds


def batch_losses(net: ImPartialNet, masked: torch.Tensor, batch: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
                 channel_index: Dict[str, torch.Tensor], sigma: float, autocast: bool) -> torch.Tensor:
    """One batch's losses, per task: foreground, background (scribbles) and reconstruction, in float32.

    Parameters
    ----------
    masked : (B, C, H, W) the batch with its blind spots replaced; what the network sees.
    batch : (B, C, H, W) the batch itself, whose hidden values the reconstruction loss explains.
    mask : (B, C, H, W) bool, True at the blind spots.
    targets : (B, T, H, W) per task -1 / 0 / 1 (see ``losses.UNLABELLED``).
    channel_index : per task, the indices of its reconstructed channels.
    autocast : run the network in bfloat16 (where the device computes it natively).
    """
    # No cast cache: each weight is cast once per step anyway, and a cache cannot live in a CUDA graph.
    with torch.autocast(device_type=masked.device.type, dtype=torch.bfloat16, enabled=autocast, cache_enabled=False):
        outputs = net(masked)
    parts = []
    for t, task in enumerate(net.tasks):
        out = outputs[task.name]
        scribbles = scribble_loss(out, targets[:, t])
        idx = channel_index[task.name]
        parts += [scribbles["foreground"], scribbles["background"],
                  reconstruction_loss(out, batch[:, idx], mask[:, idx], sigma)]
    return torch.stack(parts).float()


def compile_mode(device: torch.device) -> str:
    """``torch.compile``'s mode for the training step (with ``TrainingConfig.compile_network``): on
    CUDA the compiled step is replayed as CUDA graphs, which took the paper-sized step from 11.6-14.9
    to 9.9-10.9 ms on H100s (benchmarks/results/gpu.md)."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def readback_lag(device: torch.device) -> int:
    """Iterations by which the losses are read back late. On an accelerator reading an iteration's
    losses at once would make the host wait for the device every step with nothing queued behind
    it; one iteration late, the host prepares the next step while the device computes this one."""
    return 0 if device.type == "cpu" else 1


def loss_names(tasks: Sequence[TaskSpec]) -> List[str]:
    """Names of a training step's losses, in the order the step returns them: the weighted total,
    then each task's foreground, background and reconstruction parts."""
    return ["total"] + [f"{t.name}_{part}" for t in tasks for part in ("foreground", "background", "reconstruction")]


@dataclass
class EvaluationPlan:
    """Where a training is scored, and what scoring costs compared with a training step.

    Attributes
    ----------
    images : the normalised training images.
    monitored : per image, the (T, H, W) targets early stopping watches: the scribbles held out
        for validation, or the training scribbles when none are held out.
    monitored_windows : where ``monitored`` is scored at each evaluation.
    threshold_windows : where all scribbles are scored to choose the thresholds.
    """

    images: List[np.ndarray]
    monitored: List[np.ndarray]
    monitored_windows: List[Window]
    threshold_windows: List[Window]

    @classmethod
    def for_data(cls, data: Sequence[TrainingImage], seed: int) -> "EvaluationPlan":
        """The plan for ``data``; ``seed`` picks the windows scored when there are too many to score all."""
        has_validation = any((d.validation_targets != UNLABELLED).any() for d in data)
        monitored = [d.validation_targets if has_validation else d.train_targets for d in data]
        return cls([d.image for d in data], monitored,
                   evaluation_windows(monitored, VALIDATION_PIXELS, np.random.default_rng(seed + 3)),
                   evaluation_windows([d.all_targets for d in data], THRESHOLD_PIXELS, np.random.default_rng(seed + 4)))

    def validation_loss(self, net: ImPartialNet, device: torch.device, mixed_precision: bool = True) -> Optional[float]:
        """``net``'s loss on the monitored scribbles (None if there are none)."""
        return _scribble_loss(net, self.images, self.monitored, self.monitored_windows, device, mixed_precision)

    @property
    def finishing_evaluations(self) -> float:
        """What is predicted once training stops, in evaluations: the last validation, then the
        threshold choice (all scribbles)."""
        return 1 + _window_pixels(self.threshold_windows) / max(_window_pixels(self.monitored_windows), 1)

    def steps_per_evaluation(self, batch_size: int, patch_size: int) -> float:
        """An evaluation's guessed cost in training steps, before one is timed: predicting a pixel
        takes about a third of what a training step spends on it."""
        return _window_pixels(self.monitored_windows) / (3 * batch_size * patch_size ** 2)


class BestWeights:
    """Early stopping's memory: the best validation loss so far, a copy of the weights that had it,
    and how many evaluations have passed without improving on it.

    Parameters
    ----------
    patience : evaluations without improvement after which training should stop.
    """

    MIN_IMPROVEMENT = 1e-5

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.value = math.inf
        self.state: Optional[Dict[str, torch.Tensor]] = None
        self.evaluations_since_best = 0

    def offer(self, validation: float, net: torch.nn.Module) -> bool:
        """Keep a copy of ``net``'s weights if ``validation`` improves on the best by more than
        ``MIN_IMPROVEMENT`` or ties with it; count one more evaluation without improvement unless
        it improves. Returns whether the weights were kept.

        A tie keeps the later weights: the held-out scribbles cannot tell the two apart, and the
        later ones have learnt more of the image. Few strokes are all classified with certainty
        within 100 iterations (a validation loss below 1e-12 on two MIBI crops with 20 nucleus
        strokes each), after which every evaluation ties; keeping the first of them threw away
        the rest of the training, whatever its length (``experiments/few_strokes.py``: held-out
        mDICE 0.293 after 1000 iterations, as after 100, and 0.480 keeping the later weights).
        """
        improves = validation < self.value - self.MIN_IMPROVEMENT
        if improves or validation <= self.value + self.MIN_IMPROVEMENT:
            self.value = min(self.value, validation)
            self.evaluations_since_best = 0 if improves else self.evaluations_since_best + 1
            self.state = copy.deepcopy(net.state_dict())
            return True
        self.evaluations_since_best += 1
        return False

    @property
    def patience_exhausted(self) -> bool:
        """Whether ``patience`` evaluations in a row have not improved on the best."""
        return self.evaluations_since_best >= self.patience

    @property
    def best_validation(self) -> Optional[float]:
        """The best validation loss, or None before any evaluation."""
        return None if self.value == math.inf else self.value

    def restore(self, net: torch.nn.Module) -> None:
        """Put the best weights back into ``net`` (nothing changes if none were kept)."""
        if self.state is not None:
            net.load_state_dict(self.state)


class TimeBudget:
    """Whether another iteration fits in the time budget, with the evaluations still due after it.

    An evaluation's time is measured each time one runs (``timed``) and guessed before the first
    as ``steps_per_evaluation`` training steps.

    Parameters
    ----------
    budget_s : seconds the whole training may take, thresholds included.
    steps_per_evaluation : see ``EvaluationPlan.steps_per_evaluation``.
    finishing_evaluations : see ``EvaluationPlan.finishing_evaluations``.
    """

    def __init__(self, budget_s: float, steps_per_evaluation: float, finishing_evaluations: float) -> None:
        self.budget_s = budget_s
        self.steps_per_evaluation = steps_per_evaluation
        self.finishing_evaluations = finishing_evaluations
        self.evaluation_s: Optional[float] = None

    def timed(self, evaluate: Callable[[], Optional[float]]) -> Optional[float]:
        """Run an evaluation, remembering how long it took; returns its result."""
        began = time.perf_counter()
        result = evaluate()
        self.evaluation_s = time.perf_counter() - began
        return result

    def allows_another_step(self, elapsed_s: float, iterations: int, next_evaluates: bool) -> bool:
        """Whether, ``elapsed_s`` into training after ``iterations`` iterations, one more step (and
        the evaluation after it if ``next_evaluates``) still leaves time for the last validation
        and the threshold choice."""
        step_s = elapsed_s / iterations
        one_evaluation_s = self.evaluation_s if self.evaluation_s is not None else step_s * self.steps_per_evaluation
        finishing_s = one_evaluation_s * self.finishing_evaluations
        return not (elapsed_s + step_s + one_evaluation_s * next_evaluates + finishing_s > self.budget_s)

    def remaining_s(self, elapsed_s: float, iterations: int, max_iterations: int) -> float:
        """Seconds left: until the iteration limit at the pace so far, or until the budget, whichever comes first."""
        per_iteration = elapsed_s / iterations
        return min((max_iterations - iterations) * per_iteration, max(0.0, self.budget_s - elapsed_s))


class LateReadBack:
    """Iterations whose losses are still on the device, read back ``lag`` iterations late
    (see ``readback_lag``)."""

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.pending: List[Tuple[int, torch.Tensor]] = []

    def push(self, iteration: int, values: torch.Tensor) -> None:
        """Queue an iteration's losses, as the training step returned them."""
        self.pending.append((iteration, values))

    def ready(self, evaluate: bool) -> Iterator[Tuple[int, torch.Tensor]]:
        """The (iteration, losses) to read now, oldest first: all of them before an evaluation
        (which must see the latest iteration's weights), else all but the last ``lag``."""
        while len(self.pending) > (0 if evaluate else self.lag):
            yield self.pending.pop(0)

    def rest(self) -> Iterator[Tuple[int, torch.Tensor]]:
        """Everything still queued, when training ends."""
        return self.ready(evaluate=True)


class ProgressLog:
    """Each iteration's losses as they are read back: checked, kept as history, and passed to the
    progress callback with the time left.

    Parameters
    ----------
    tasks : the tasks trained, which name the losses.
    config : the training's settings (its iteration limit and learning rate).
    budget : forecasts the time left.
    callback : called with a ``TrainingProgress`` after each iteration is recorded.
    """

    def __init__(self, tasks: Sequence[TaskSpec], config: TrainingConfig, budget: TimeBudget,
                 callback: Optional[ProgressCallback]) -> None:
        self.names = loss_names(tasks)
        self.config, self.budget, self.callback = config, budget, callback
        self.history: List[Dict[str, float]] = []
        self.start = time.perf_counter()

    def elapsed_s(self) -> float:
        """Seconds since training started."""
        return time.perf_counter() - self.start

    def read(self, iteration: int, values: torch.Tensor) -> Dict[str, float]:
        """An iteration's losses by name; ``TrainingDiverged`` if they are not finite."""
        losses = dict(zip(self.names, values.tolist()))
        if not math.isfinite(losses["total"]):
            raise TrainingDiverged(
                f"training diverged at iteration {iteration} (loss is {losses['total']}); "
                f"try a lower learning rate than {self.config.learning_rate}")
        return losses

    def record(self, iteration: int, losses: Dict[str, float], validation: Optional[float],
               best_validation: Optional[float]) -> None:
        """Add an iteration's losses (with the time and iteration number) to the history and tell
        the callback; ``validation`` is this iteration's validation loss, if it was evaluated."""
        elapsed = self.elapsed_s()
        losses["elapsed_s"], losses["iteration"] = elapsed, iteration
        self.history.append(losses)
        if self.callback is not None:
            remaining = self.budget.remaining_s(elapsed, iteration, self.config.max_iterations)
            self.callback(TrainingProgress(iteration, self.config.max_iterations, losses, elapsed, remaining,
                                           best_validation, validation))


def _network(network: NetworkConfig, tasks: Tuple[TaskSpec, ...], initial_state: Optional[Dict[str, torch.Tensor]],
             device: torch.device) -> ImPartialNet:
    """A new network (random weights from torch's seeded generator, or ``initial_state``) on ``device``."""
    net = ImPartialNet(network, tasks)
    if initial_state is not None:
        net.load_state_dict(initial_state)
    # channels_last is faster for convolutions on CUDA and on CPU (oneDNN) alike.
    return net.to(device).to(memory_format=torch.channels_last)


def _optimisation(net: ImPartialNet, tasks: Tuple[TaskSpec, ...], config: TrainingConfig, device: torch.device
                  ) -> Tuple[TrainingStep, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    """The training step (weighted losses, backward, Adam; compiled or replayed as a CUDA graph as
    ``config`` asks) and the schedule that halves its learning rate when validation stalls."""
    # Compiling the network with its losses fuses the heads, softmax and loss arithmetic too.
    losses = torch.compile(batch_losses, mode=compile_mode(device)) if config.compile_network else batch_losses
    # A compiled step on CUDA is already replayed as CUDA graphs (compile_mode).
    graphed = device.type == "cuda" and config.cuda_graphs and not config.compile_network
    # The fused CUDA Adam is one kernel instead of a dozen per parameter tensor; capturable keeps its
    # step count on the device, as a CUDA graph needs.
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, fused=device.type == "cuda",
                                 capturable=graphed)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    autocast = config.mixed_precision and bfloat16_native(device)
    channel_index = {t.name: torch.tensor(t.reconstructed_channels, device=device) for t in tasks}
    weights = torch.tensor([config.foreground_weight, config.background_weight, config.reconstruction_weight] * len(tasks),
                           device=device)
    step = (GraphedTrainingStep if graphed else TrainingStep)(
        lambda *inputs: losses(net, *inputs, channel_index, config.sigma, autocast), weights, optimizer)
    return step, scheduler


def _validate(net: ImPartialNet, plan: EvaluationPlan, device: torch.device, mixed_precision: bool, budget: TimeBudget,
              scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau, best: BestWeights) -> Optional[float]:
    """Score ``net`` on the monitored scribbles, timed for the budget; the score steps the
    learning-rate schedule and early stopping. Returns it (None if nothing is monitored)."""
    validation = budget.timed(lambda: plan.validation_loss(net, device, mixed_precision))
    if validation is not None:
        scheduler.step(validation)
        best.offer(validation, net)
    return validation


def train(
    images: Sequence[np.ndarray],
    scribbles: Sequence[np.ndarray],
    tasks: Sequence[TaskSpec],
    network: NetworkConfig,
    config: TrainingConfig = TrainingConfig(),
    progress: Optional[ProgressCallback] = None,
    initial_state: Optional[Dict[str, torch.Tensor]] = None,
) -> TrainingResult:
    """Train an ImPartial network on normalised images and their scribbles.

    Parameters
    ----------
    images : normalised float32 (C, H, W) arrays (see ``normalization.normalize``), any sizes.
    scribbles : uint8 (H, W) arrays in this project's convention (0 = not annotated). An image
        without scribbles still feeds the self-supervised loss.
    tasks, network, config : what to learn, the network's shape, how to train.
    progress : called after every iteration with a ``TrainingProgress``; raise
        ``TrainingCancelled`` from it to stop.
    initial_state : weights to start from (fine-tuning a saved model with added scribbles).

    Returns
    -------
    TrainingResult
        The network with the best validation loss, its thresholds and the training's history.

    Training stops at ``max_iterations``, at ``time_budget_s``, or when the validation loss has
    not improved for ``patience`` evaluations; the weights with the best validation loss are kept.
    """
    tasks = tuple(tasks)
    _check_inputs(images, scribbles, tasks, network.n_channels)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    data = prepare_training_images(images, scribbles, tasks, config.validation_fraction, np.random.default_rng(config.seed))
    sampler = PatchSampler(data, config.patch_size, config.scribble_bias, config.seed + 1, device, config.haze)
    net = _network(network, tasks, initial_state, device)
    step, scheduler = _optimisation(net, tasks, config, device)
    generator = torch.Generator(device=device).manual_seed(config.seed + 2)
    plan = EvaluationPlan.for_data(data, config.seed)
    best = BestWeights(config.patience)
    budget = TimeBudget(config.time_budget_s, plan.steps_per_evaluation(config.batch_size, config.patch_size),
                        plan.finishing_evaluations)
    readback = LateReadBack(readback_lag(device))
    progress_log = ProgressLog(tasks, config, budget, progress)

    stopped_because = "iteration budget"
    iteration = 0
    for iteration in range(1, config.max_iterations + 1):
        net.train()
        batch, targets = sampler.batch(config.batch_size)
        masked, mask = blind_spot_mask(batch, config.blind_spot_cell, config.blind_spot_radius, generator)
        readback.push(iteration, step(masked.contiguous(memory_format=torch.channels_last), batch, mask, targets))
        # Validation waits for every queued iteration, so the weights it sees are this iteration's.
        evaluate = iteration % config.eval_every == 0 or iteration == config.max_iterations
        for done, values in readback.ready(evaluate):
            losses, validation = progress_log.read(done, values), None
            if evaluate and done == iteration:
                validation = _validate(net, plan, device, config.mixed_precision, budget, scheduler, best)
                losses["validation"] = validation if validation is not None else float("nan")
            progress_log.record(done, losses, validation, best.best_validation)
        if best.patience_exhausted:
            stopped_because = f"no validation improvement in {config.patience} evaluations"
            break
        if not budget.allows_another_step(progress_log.elapsed_s(), iteration, (iteration + 1) % config.eval_every == 0):
            stopped_because = "time budget"
            break
    for done, values in readback.rest():
        progress_log.record(done, progress_log.read(done, values), None, best.best_validation)

    # A final evaluation so the last stretch of iterations is not thrown away unseen.
    if progress_log.history and math.isnan(progress_log.history[-1].get("validation", math.nan)):
        validation = plan.validation_loss(net, device, config.mixed_precision)
        if validation is not None:
            best.offer(validation, net)
    best.restore(net)
    net.eval()
    thresholds = choose_thresholds(net, data, device, plan.threshold_windows, config.mixed_precision)
    elapsed = progress_log.elapsed_s()
    log.info("trained %d iterations in %.1f s (%s); best validation loss %.4f", iteration, elapsed, stopped_because, best.value)
    return TrainingResult(net, thresholds, progress_log.history, iteration, elapsed, stopped_because, best.best_validation)
