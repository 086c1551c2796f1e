"""Refining a model with new strokes: a short fine-tune kept as the model of the new scribbles."""
from __future__ import annotations

import dataclasses

import numpy as np

from impartial_core.model_store import REFINE_BUDGET_S, REFINE_LEARNING_RATE_FACTOR, ModelStore
from impartial_core.scribbles.values import ScribbleValues

from .test_frontend_api import _request, _Trainer


def test_a_refined_model_is_reused_for_its_scribbles_without_training(tmp_path):
    path, train = tmp_path / "m.safetensors", _Trainer()
    store = ModelStore()
    first = store.train_or_reuse(path, _request(), train).model
    # new strokes: the request changes, and the refinement starts from the model in hand
    request = _request()
    more = request.scribbles[0].copy()
    more[30, 5:15] = 1
    request = dataclasses.replace(request, scribbles=[more])
    refined = store.refine(path, request, first, train)
    tuning = train.requests[-1]
    assert tuning.start_from is first and tuning.training.time_budget_s == min(REFINE_BUDGET_S, 180.0)
    assert tuning.training.learning_rate == request.training.learning_rate * REFINE_LEARNING_RATE_FACTOR
    assert refined.source == "trained" and refined.backup is not None  # the earlier model is kept
    assert refined.model.fingerprint == request.fingerprints()[0]
    assert refined.model.training == request.training
    assert refined.model.training_summary["refined_for"] == request.fingerprints()[0]
    # a later run of the pipeline on these scribbles (a new process: only the file) trains nothing
    calls = len(train.requests)
    again = ModelStore().train_or_reuse(path, request, train)
    assert again.source == "file" and len(train.requests) == calls


def test_the_split_value_is_a_class_value_like_the_others():
    values = ScribbleValues(5, 7, 9, split=11)
    np.testing.assert_array_equal(values.to_classes(np.array([[0, 5, 7], [9, 11, 0]])), [[0, 1, 2], [3, 4, 0]])
    assert [(p.field, p.kind) for p in ScribbleValues(1, 2, 3, split=2).problems()] == [("split", "same_value")]
