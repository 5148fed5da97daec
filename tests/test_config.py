"""Tests of the method config (``nnunet_dumm.config``) and the named trainer variants built from it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from nnunet_dumm.config import PAPER_CONFIG, DUMMConfig, LegacyConfigError, TeacherSpec
from nnunet_dumm.selection import RoundSchedule
from nnunet_dumm.uncertainty import PixelThreshold, PixelUncertainty, PixelWeighting, SampleUncertainty

CUSTOM = DUMMConfig(
    teachers=(
        TeacherSpec(trainer="nnUNetTrainer_5epochs", folds=(0, 1, "all")),
        TeacherSpec(model_folder="/models/other", configuration="3d_fullres", checkpoint="checkpoint_best.pth"),
    ),
    min_models=3,
    use_mirroring=False,
    pixel_uncertainty=PixelUncertainty.VARIANCE,
    pixel_weighting=PixelWeighting.NONE,
    pixel_threshold_mode=PixelThreshold.FIXED,
    pixel_threshold=0.3,
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
    assert data["pixel_weighting"] == "none" and type(data["pixel_weighting"]) is str
    assert data["sample_uncertainty"] == "dice" and type(data["sample_uncertainty"]) is str
    assert data["round_fractions"] == [0.25, 0.5, 1.0]
    assert data["teachers"][0]["folds"] == [0, 1, "all"]
    assert "schedule" not in data


def test_to_dict_is_plain_json_types():
    d = DUMMConfig().to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {f.name for f in dataclasses.fields(DUMMConfig) if f.init}


def test_enum_fields_accept_strings():
    config = DUMMConfig(pixel_uncertainty="vote", pixel_weighting="none", sample_uncertainty="entropy",
                        pixel_threshold_mode="fixed")
    assert config.pixel_uncertainty is PixelUncertainty.VOTE
    assert config.pixel_weighting is PixelWeighting.NONE
    assert config.pixel_threshold_mode is PixelThreshold.FIXED
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
        ("lambda_max", -1),
        ("rampup_fraction", 2),
        ("rampup_fraction", -0.5),
        ("unlabeled_batch_ratio", 0),
        ("pixel_keep_quantile", 0),
        ("pixel_keep_quantile", 1.5),
        ("min_models", 0),
        ("teachers", ()),
        ("pixel_uncertainty", "nope"),
        ("pixel_weighting", "nope"),
        ("pixel_threshold_mode", "nope"),
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
    config = DUMMConfig(pixel_threshold=1.0, pixel_keep_quantile=1.0, lambda_max=0.0, rampup_fraction=1.0,
                        min_models=1)
    assert config.pixel_threshold == 1.0 and config.pixel_keep_quantile == 1.0
    assert DUMMConfig(pixel_threshold=0.0, rampup_fraction=0.0).pixel_threshold == 0.0


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


# --- the recommended default, the paper's setting, configs of earlier versions --------------------------------


def test_the_default_is_the_class_quantile_mask_and_the_paper_config_the_fixed_one():
    assert DUMMConfig().pixel_threshold_mode is PixelThreshold.CLASS_QUANTILE
    assert DUMMConfig().pixel_keep_quantile == 0.9
    assert PAPER_CONFIG.pixel_threshold_mode is PixelThreshold.FIXED and PAPER_CONFIG.pixel_threshold == 0.1
    assert PAPER_CONFIG.method_differs(DUMMConfig()) == ["pixel_threshold_mode"]


# dumm_config.json of a fold trained by nnunet_dumm 0.1 with nnUNetTrainerDUMM (the paper's setting then)
CONFIG_OF_0_1 = {
    "teachers": [{"trainer": "nnUNetTrainer", "plans": None, "configuration": None, "folds": None,
                  "checkpoint": "checkpoint_final.pth", "model_folder": None}],
    "min_models": 2, "leak_free_validation": False, "use_mirroring": True, "pixel_uncertainty": "entropy",
    "pixel_weighting": "mask", "pixel_threshold": 0.1, "pixel_threshold_mode": "fixed", "pixel_keep_quantile": 0.9,
    "weight_levels": 8, "sample_uncertainty": "dice", "round_fractions": [0.5, 1.0], "round_epoch_shares": [1.0, 1.0],
    "student_joins_ensemble": True, "student_weight": 1.0, "unlabeled_batch_ratio": 1.0,
    "unlabeled_oversample_foreground": 0.0, "copy_paste": False, "copy_paste_box": 0.6666666666666666,
    "student_init": "scratch", "consistency_weight": 0.0, "consistency_threshold": 0.95, "schedule_factor": 1.0,
    "lambda_max": 1.0, "rampup_fraction": 0.2,
}


def test_a_config_saved_by_the_previous_version_loads_as_the_papers(tmp_path):
    (tmp_path / "dumm_config.json").write_text(json.dumps(CONFIG_OF_0_1))
    assert DUMMConfig.load(tmp_path / "dumm_config.json") == PAPER_CONFIG


@pytest.mark.parametrize(("field", "value"), [("copy_paste", True), ("consistency_weight", 1.0),
                                               ("schedule_factor", 2.0), ("student_init", "teacher"),
                                               ("pixel_weighting", "soft"), ("sample_uncertainty", "dice_fg")])
def test_a_config_that_used_a_removed_lever_names_it(field, value):
    with pytest.raises(LegacyConfigError, match=f"{field}={value!r}.*removed.*git checkout"):
        DUMMConfig.from_dict({**CONFIG_OF_0_1, field: value})


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


def test_the_variants_are_variants_of_the_recommended_method(variants):
    base = variants.nnUNetTrainerDUMM.dumm_config
    for name in ("nnUNetTrainerDUMM_noSUS", "nnUNetTrainerDUMM_noMask", "nnUNetTrainerDUMM_leakFree"):
        assert getattr(variants, name).dumm_config.pixel_threshold_mode is base.pixel_threshold_mode, name
    assert variants.nnUNetTrainerDUMM_paper.dumm_config == PAPER_CONFIG


def test_the_package_ships_the_trainers_users_pick():
    # every class nnU-Net's lookup finds in the package's extTrainer folder has a row in the README's table
    import re
    from pathlib import Path

    from nnunet_dumm import trainers

    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text().splitlines()
    names = {m.group(1) for line in readme if (m := re.match(r"\| `(nnUNetTrainer\w+)`", line))}
    assert set(trainers.__all__) <= names, set(trainers.__all__) - names
    assert len(trainers.__all__) <= 15


@pytest.fixture(scope="module")
def benchmark_trainers():
    from benchmarks import trainers

    return trainers


def test_benchmark_presets_cover_every_arm_and_budget(benchmark_trainers):
    from nnunet_dumm.trainers import budget as package_presets

    shipped = {n for n in package_presets.__all__ if n.endswith("_demo")}
    expected = {f"{'nnUNetTrainerStock' if arm.__name__ == 'nnUNetTrainer' else arm.__name__}_{budget}"
                for arm in benchmark_trainers.ARMS for budget in benchmark_trainers.BUDGETS} - shipped
    assert set(benchmark_trainers.PRESETS) == expected
    for name, preset in benchmark_trainers.PRESETS.items():
        assert preset.__name__ == name
        assert getattr(benchmark_trainers, name) is preset
        assert preset.budget == benchmark_trainers.BUDGETS[name.rsplit("_", 1)[1]]


def test_dumm_presets_use_teachers_of_the_same_budget(benchmark_trainers):
    from nnunet_dumm.trainers import budget, nnUNetTrainerDUMM

    presets = {**benchmark_trainers.PRESETS, **{n: getattr(budget, n) for n in budget.__all__ if n.endswith("_demo")}}
    dumm_presets = {n: p for n, p in presets.items() if issubclass(p, nnUNetTrainerDUMM)}
    assert dumm_presets
    for name, preset in dumm_presets.items():
        arm = preset.__bases__[-1]
        teacher = f"nnUNetTrainerStock_{preset.budget.name}"
        assert teacher in presets
        assert all(t.trainer == teacher for t in preset.dumm_config.teachers), name
        # only the teachers' trainer changes
        assert dataclasses.replace(preset.dumm_config, teachers=arm.dumm_config.teachers) == arm.dumm_config
