"""Settings are checked when they are made: a value out of range is refused with its name."""
from __future__ import annotations

import math

import pytest

from impartial_core.config import InstanceConfig, NetworkConfig, TrainingConfig


@pytest.mark.parametrize("field, value", [
    ("patch_size", 30), ("patch_size", 8), ("patch_size", 64.0),
    ("batch_size", 0), ("max_iterations", 0), ("max_iterations", 2.5),
    ("eval_every", 0), ("eval_every", -1), ("patience", 0), ("seed", -1),
    ("blind_spot_cell", 1), ("blind_spot_radius", 0), ("blind_spot_radius", 64),
    ("time_budget_s", 0), ("time_budget_s", math.nan), ("learning_rate", 0.0), ("learning_rate", -1e-3),
    ("sigma", 0.0), ("foreground_weight", -0.1), ("reconstruction_weight", math.inf),
    ("scribble_bias", 1.5), ("scribble_bias", -0.1), ("validation_fraction", 0.9), ("validation_fraction", -0.1),
    ("haze", -0.5), ("haze", math.inf), ("haze", "1"),
])
def test_training_settings_out_of_range_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        TrainingConfig(**{field: value})


def test_training_needs_some_loss_to_learn_from():
    with pytest.raises(ValueError, match="cannot all be 0"):
        TrainingConfig(foreground_weight=0, background_weight=0, reconstruction_weight=0)
    # one loss is enough (the self-supervised ablation turns the reconstruction off)
    assert TrainingConfig(reconstruction_weight=0.0).reconstruction_weight == 0.0


def test_training_settings_at_their_limits_are_accepted():
    TrainingConfig(patch_size=16, batch_size=1, max_iterations=1, eval_every=1, patience=1, seed=0, blind_spot_cell=2,
                   blind_spot_radius=7, scribble_bias=0.0, validation_fraction=0.0, time_budget_s=math.inf, haze=0.0)
    TrainingConfig(scribble_bias=1.0, validation_fraction=0.89)


@pytest.mark.parametrize("field, value", [
    ("threshold", -0.1), ("threshold", 1.5), ("threshold", math.nan), ("threshold", "0.5"),
    ("min_size", -1), ("min_size", 2.5), ("cell_min_size", -5), ("split_h", 0.0), ("split_h", math.inf),
])
def test_instance_settings_out_of_range_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        InstanceConfig(**{field: value})


def test_instance_settings_at_their_limits_are_accepted():
    for threshold in (None, 0.0, 1.0):
        assert InstanceConfig(threshold=threshold).threshold == threshold
    assert InstanceConfig(min_size=0, cell_min_size=0, split_h=0.01).min_size == 0


def test_network_shape_out_of_range_is_refused_by_name():
    with pytest.raises(ValueError, match="network depth must be a whole number from 1 to 6"):
        NetworkConfig(depth=0)
