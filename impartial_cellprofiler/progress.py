"""Training progress in CellProfiler: a log line about every 10 s, and a progress dialog in the GUI.

Headless runs (and cluster jobs) get log lines on the ``impartial`` logger; the GUI's Test mode,
which trains in wx's main thread, also gets a wx progress dialog with a Cancel button.
"""
import logging
import time

LOGGER = logging.getLogger("impartial")

#: seconds between two progress log lines
LOG_EVERY_S = 10.0


class TrainingProgress:
    """A ``progress`` callback for ``ImPartialModel.train``; call :meth:`close` when training ends.

    Parameters
    ----------
    title : the dialog's title (e.g. ``"#5: ImPartial"``: the module's number and name).
    headless : whether CellProfiler runs without its GUI (no dialog then).
    """

    def __init__(self, title, headless):
        self.last_log = 0.0
        self.dialog = None
        if headless:
            return
        try:
            import wx

            if wx.GetApp() is not None and wx.IsMainThread():
                self.dialog = wx.ProgressDialog(
                    title, "Training the ImPartial model…", maximum=1000,
                    # PD_AUTO_HIDE: without it the dialog turns modal when the maximum is reached
                    # and waits for the user to click "Close" before the pipeline goes on.
                    style=wx.PD_APP_MODAL | wx.PD_AUTO_HIDE | wx.PD_CAN_ABORT | wx.PD_ELAPSED_TIME
                    | wx.PD_REMAINING_TIME)
        except Exception:  # no wx, no display: log lines only
            self.dialog = None

    def __call__(self, progress):
        loss = progress.losses.get("total")
        loss_text = "%.4f" % loss if loss is not None else "n/a"
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY_S or progress.iteration >= progress.max_iterations:
            self.last_log = now
            LOGGER.info("ImPartial training: iteration %d/%d, loss %s, %.0f s elapsed, about %.0f s left",
                        progress.iteration, progress.max_iterations, loss_text, progress.elapsed_s,
                        progress.remaining_s)
        if self.dialog is None:
            return
        try:
            keep_going, _ = self.dialog.Update(int(1000 * progress.fraction),
                                               "Iteration %d, loss %s" % (progress.iteration, loss_text))
        except Exception:  # the dialog went away (its window was closed)
            keep_going = True
        if not keep_going:
            from impartial_core.training import TrainingCancelled

            raise TrainingCancelled()

    def close(self):
        if self.dialog is not None:
            try:
                self.dialog.Destroy()
            except Exception:
                pass
            self.dialog = None


class Cancelled(ValueError):
    """The user stopped a training with the progress dialog's Cancel button (no model was saved)."""


def train_with_progress(request, title, headless):
    """Train the model of a ``model_store.TrainingRequest``: log lines, and a dialog titled ``title``
    in the GUI whose Cancel button stops training (:class:`Cancelled`: no model is saved)."""
    from impartial_core.model import ImPartialModel
    from impartial_core.training import TrainingCancelled

    LOGGER.info("ImPartial: training on %d image set(s) (%d scribbled pixels), budget %.0f s, at most %d iterations",
                len(request.images), int(sum(int((s > 0).sum()) for s in request.scribbles)),
                request.training.time_budget_s, request.training.max_iterations)
    progress = TrainingProgress(title, headless)
    try:
        model = ImPartialModel.train(request.images, request.scribbles, request.tasks, request.network,
                                     request.training, channel_names=request.channel_names, progress=progress,
                                     start_from=request.start_from)
    except TrainingCancelled:
        raise Cancelled("ImPartial: training was cancelled; no model was saved")
    finally:
        progress.close()
    summary = model.training_summary
    LOGGER.info("ImPartial: trained %s iterations in %s s (%s)", summary.get("iterations"), summary.get("elapsed_s"),
                summary.get("stopped_because"))
    return model


class PrefixedLog(logging.LoggerAdapter):
    """The library's log lines on the ``impartial`` logger, prefixed with the module's name as the
    module's own lines are."""

    def __init__(self):
        super().__init__(LOGGER, {})

    def process(self, msg, kwargs):
        return "ImPartial: %s" % msg, kwargs
