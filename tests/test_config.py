"""Tests of the method config (``nnunet_dumm.config``) and the named trainer variants built from it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from nnunet_dumm.config import DUMMConfig, TeacherSpec
from nnunet_dumm.selection import RoundSchedule
from nnunet_dumm.uncertainty import PixelUncertainty, PixelWeighting, SampleUncertainty

CUSTOM = DUMMConfig(
    teachers=(
        TeacherSpec(trainer="nnUNetTrainer_5epochs", folds=(0, 1, "all")),
        TeacherSpec(model_folder="/models/other", configuration="3d_fullres", checkpoint="checkpoint_best.pth"),
    ),
    min_models=3,
    use_mirroring=False,
    pixel_uncertainty=PixelUncertainty.VARIANCE,
    pixel_weighting=PixelWeighting.MASK_AND_SOFT,
    pixel_threshold=0.3,
    weight_levels=16,
    sample_uncertainty=SampleUncertainty.DICE,
    round_fractions=(0.25, 0.5, 1.0),
    round_epoch_shares=(1.0, 2.0, 3.0),
    student_joins_ensemble=False,
    unlabeled_batch_ratio=0.5,
    lambda_max=2.0,
    rampup_fraction=0.0,
)


# --- round trips ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [DUMMConfig(), CUSTOM], ids=["default", "custom"])
def test_dict_round_trip(config):
    restored = DUMMConfig.from_dict(config.to_dict())
    assert restored == config
    assert restored.teachers == config.teachers
    assert restored.schedule == config.schedule


@pytest.mark.parametrize("config", [DUMMConfig(), CUSTOM], ids=["default", "custom"])
def test_file_round_trip(config, tmp_path):
    path = tmp_path / "dumm_config.json"
    config.save(path)
    restored = DUMMConfig.load(path)
    assert restored == config
    assert isinstance(restored.teachers[0], TeacherSpec)
    assert isinstance(restored.round_fractions, tuple)
    assert restored.pixel_uncertainty is config.pixel_uncertainty


def test_json_holds_strings_for_enums(tmp_path):
    path = tmp_path / "dumm_config.json"
    CUSTOM.save(str(path))
    data = json.loads(path.read_text())
    assert data["pixel_uncertainty"] == "variance" and type(data["pixel_uncertainty"]) is str
    assert data["pixel_weighting"] == "mask_and_soft" and type(data["pixel_weighting"]) is str
    assert data["sample_uncertainty"] == "dice" and type(data["sample_uncertainty"]) is str
    assert data["round_fractions"] == [0.25, 0.5, 1.0]
    assert data["teachers"][0]["folds"] == [0, 1, "all"]
    assert "schedule" not in data


def test_to_dict_is_plain_json_types():
    d = DUMMConfig().to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {f.name for f in dataclasses.fields(DUMMConfig) if f.init}


def test_enum_fields_accept_strings():
    config = DUMMConfig(pixel_uncertainty="vote", pixel_weighting="soft", sample_uncertainty="entropy")
    assert config.pixel_uncertainty is PixelUncertainty.VOTE
    assert config.pixel_weighting is PixelWeighting.SOFT
    assert config.sample_uncertainty is SampleUncertainty.ENTROPY


def test_schedule_is_derived_from_round_fields():
    assert CUSTOM.schedule == RoundSchedule((0.25, 0.5, 1.0), (1.0, 2.0, 3.0))
    assert DUMMConfig(round_fractions=[1.0], round_epoch_shares=[1.0]).schedule.num_rounds == 1


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DUMMConfig().lambda_max = 2.0


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pixel_threshold", 1.5),
        ("pixel_threshold", -0.1),
        ("weight_levels", 0),
        ("weight_levels", 256),
        ("lambda_max", -1),
        ("rampup_fraction", 2),
        ("rampup_fraction", -0.5),
        ("unlabeled_batch_ratio", 0),
        ("consistency_weight", -1),
        ("consistency_threshold", 1.5),
        ("schedule_factor", 0),
        ("min_models", 0),
        ("teachers", ()),
        ("pixel_uncertainty", "nope"),
        ("pixel_weighting", "nope"),
        ("sample_uncertainty", "kl"),
        ("round_fractions", (1.0, 0.5)),
        ("round_fractions", (0.5,)),  # one fraction for two epoch shares
    ],
)
def test_out_of_range_values_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DUMMConfig(**{field: value})


def test_round_epoch_shares_are_validated():
    with pytest.raises(ValueError, match="round_epoch_shares"):
        DUMMConfig(round_epoch_shares=(1.0, 0.0))


def test_boundary_values_are_accepted():
    config = DUMMConfig(pixel_threshold=1.0, weight_levels=255, lambda_max=0.0, rampup_fraction=1.0, min_models=1)
    assert config.pixel_threshold == 1.0 and config.weight_levels == 255
    assert DUMMConfig(pixel_threshold=0.0, weight_levels=1, rampup_fraction=0.0).weight_levels == 1


def test_unknown_fields_in_from_dict_raise():
    d = DUMMConfig().to_dict()
    d["pixel_treshold"] = 0.2
    with pytest.raises(ValueError, match="pixel_treshold"):
        DUMMConfig.from_dict(d)


def test_schedule_is_not_accepted_from_dict():
    d = DUMMConfig().to_dict()
    d["schedule"] = {"fractions": [1.0], "epoch_shares": [1.0]}
    with pytest.raises(ValueError, match="schedule"):
        DUMMConfig.from_dict(d)


def test_unknown_teacher_field_raises():
    d = DUMMConfig().to_dict()
    d["teachers"][0]["fold"] = [0]
    with pytest.raises((TypeError, ValueError)):
        DUMMConfig.from_dict(d)


# --- replace_teacher_trainers ---------------------------------------------------------------------------------


def test_replace_teacher_trainers_renames_only_teachers_without_model_folder():
    replaced = CUSTOM.replace_teacher_trainers(lambda trainer: f"{trainer}_demo")
    by_name, by_folder = replaced.teachers
    assert by_name == dataclasses.replace(CUSTOM.teachers[0], trainer="nnUNetTrainer_5epochs_demo")
    assert by_folder == CUSTOM.teachers[1]
    assert by_folder.trainer == "nnUNetTrainer"
    assert dataclasses.replace(replaced, teachers=CUSTOM.teachers) == CUSTOM
    assert CUSTOM.teachers[0].trainer == "nnUNetTrainer_5epochs"  # the original is untouched


# --- trainer variants (importing them imports nnU-Net: once per module) --------------------------------------


@pytest.fixture(scope="module")
def variants():
    from nnunet_dumm.trainers import variants

    return variants


def test_no_sus_has_one_full_round(variants):
    config = variants.nnUNetTrainerDUMM_noSUS.dumm_config
    assert config.round_fractions == (1.0,)
    assert config.schedule.num_rounds == 1
    assert config.schedule.select(["a", "b", "c"], 0) == ["a", "b", "c"]
    # everything else is the full method's
    base = variants.nnUNetTrainerDUMM.dumm_config
    assert (
        dataclasses.replace(config, round_fractions=base.round_fractions, round_epoch_shares=base.round_epoch_shares)
        == base
    )


@pytest.mark.parametrize("name", ["nnUNetTrainerDUMM_noPUM", "nnUNetTrainerPseudoLabel"])
def test_single_model_variants_use_fold_zero_without_weighting(variants, name):
    config = getattr(variants, name).dumm_config
    assert len(config.teachers) == 1
    assert config.teachers[0].folds == (0,)
    assert config.pixel_weighting is PixelWeighting.NONE
    assert config.min_models == 1
    assert config.student_joins_ensemble is False
    assert config.sample_uncertainty is SampleUncertainty.ENTROPY  # SUS ranks a single model by entropy


def test_pseudo_label_has_one_round_and_no_pum_keeps_rounds(variants):
    assert variants.nnUNetTrainerPseudoLabel.dumm_config.schedule.num_rounds == 1
    assert variants.nnUNetTrainerDUMM_noPUM.dumm_config.schedule.num_rounds == 2


def test_presets_cover_every_arm_and_budget(variants):
    # every arm on the named budgets and the proxy, candidate proxy and GPU-window budgets; stock alone on the rest
    # of the learning curve's
    proxy_budgets = set(variants.PROXY_BUDGETS.values())
    stock_only = {name for name in variants.BUDGETS if name.endswith("it")} - proxy_budgets - {"5000it"} \
        - set(variants.CANDIDATE_PROXY_BUDGETS)
    expected = {
        f"{'nnUNetTrainerStock' if arm is variants.nnUNetTrainer else arm.__name__}_{budget}"
        for arm in variants.ARMS
        for budget in variants.BUDGETS
        if budget not in stock_only or arm is variants.nnUNetTrainer
    } | {f"{lever.__name__}_{budget}" for lever in variants.LEVERS for budget in ("test", *proxy_budgets)}
    assert set(variants.PRESETS) == expected
    for name, preset in variants.PRESETS.items():
        assert preset.__name__ == name
        assert getattr(variants, name) is preset
        assert preset.budget == variants.BUDGETS[name.rsplit("_", 1)[1]]


def test_dumm_presets_use_teachers_of_the_same_budget(variants):
    dumm_presets = {n: p for n, p in variants.PRESETS.items() if issubclass(p, variants.nnUNetTrainerDUMM)}
    assert dumm_presets
    for name, preset in dumm_presets.items():
        arm_name, budget = name.rsplit("_", 1)
        arm = getattr(variants, arm_name)
        assert issubclass(preset, arm)
        # stock teachers, except a second generation's: the DUMM folds of the same budget
        teacher = f"nnUNetTrainerDUMM_{budget}" if arm is variants.nnUNetTrainerDUMM_gen2 else \
            f"nnUNetTrainerStock_{budget}"
        assert teacher in variants.PRESETS
        assert all(t.trainer == teacher for t in preset.dumm_config.teachers), name
        # only the teachers' trainer changes
        assert dataclasses.replace(preset.dumm_config, teachers=arm.dumm_config.teachers) == arm.dumm_config
