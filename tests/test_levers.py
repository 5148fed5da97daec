"""The levers beyond the paper: copy-paste mixing, the foreground-aware SUS measure, per-class quantile masks,
foreground oversampling of unlabeled patches and a student started from its teacher, each on known inputs, and
all of them at once in one short training run."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_dumm.mixing import paste_labeled_into_unlabeled
from nnunet_dumm.pseudo_labels import PseudoLabelCache, PseudoLabelMaps, class_quantile_thresholds
from nnunet_dumm.uncertainty import EnsembleStatistics, PixelUncertainty, PixelWeighting, SampleUncertainty


def test_copy_paste_puts_a_labeled_box_with_its_true_label_into_each_unlabeled_patch():
    generator = torch.Generator().manual_seed(0)
    labeled = torch.full((2, 1, 16, 16), 7.0)
    labeled_targets = [torch.full((2, 1, 16, 16), 2, dtype=torch.int16), torch.full((2, 1, 8, 8), 2, dtype=torch.int16)]
    labeled_targets[0][0, 0, :, :4] = 9  # the ignore label in part of the first labeled patch
    unlabeled = torch.zeros((3, 1, 16, 16))
    unlabeled_targets = [torch.stack([torch.ones(3, 16, 16), torch.full((3, 16, 16), 3.0)], 1).to(torch.int16),
                         torch.stack([torch.ones(3, 8, 8), torch.full((3, 8, 8), 3.0)], 1).to(torch.int16)]
    data, targets = paste_labeled_into_unlabeled(labeled, labeled_targets, unlabeled, unlabeled_targets, 0.5, 8, 4,
                                                 9, generator)
    assert unlabeled.abs().sum() == 0  # inputs unchanged
    for j in range(3):
        box = data[j, 0] == 7
        assert box.sum() == 64  # half the side on both axes: an 8 x 8 box
        full = targets[0][j]
        np.testing.assert_array_equal((full[0] == 2) | ((full[0] == 0) & (full[1] == 0)), box.numpy())
        assert (full[1][~box] == 3).all() and (full[0][~box] == 1).all()  # pseudo-label and weight outside
        # the coarser scale holds the same box, halved
        assert (targets[1][j][0] != 1).sum() == 16
    ignored = (targets[0][0][0] == 0) & (targets[0][0][1] == 0)  # sample 0 took its box from labeled sample 0
    assert ignored.sum() == ((data[0, 0] == 7).numpy() & (np.arange(16) < 4)[None, :]).sum()

    # one-channel maps (mask weighting): the box's ignored pixels take the masked label, the rest the true label
    one_channel = [t[:, :1].clone() for t in unlabeled_targets]
    data, targets = paste_labeled_into_unlabeled(labeled, labeled_targets, unlabeled, one_channel, 0.5, 8, 4, 9,
                                                 torch.Generator().manual_seed(0))
    box = data[0, 0] == 7
    expected = np.where(box.numpy(), np.where(np.arange(16) < 4, 4, 2)[None, :], 1)
    np.testing.assert_array_equal(targets[0][0, 0].numpy(), expected)


def test_foreground_dice_does_not_reward_agreeing_on_nothing():
    one_hot = lambda labels: torch.nn.functional.one_hot(torch.tensor(labels), 3).movedim(-1, 1).float()  # noqa: E731
    empty = EnsembleStatistics.from_probabilities(one_hot([[[0, 0, 0, 0]], [[0, 0, 0, 0]]]))
    assert empty.sample_uncertainty(SampleUncertainty.DICE) == 0.0  # the old measure: perfect agreement
    assert empty.sample_uncertainty(SampleUncertainty.DICE_FOREGROUND) == 1.0
    # class 2 absent from both maps: only class 1 counts (Dice 2/3), not (2/3 + 1) / 2
    partial = EnsembleStatistics.from_probabilities(one_hot([[[1, 1, 0, 0]], [[1, 0, 0, 0]]]))
    assert partial.sample_uncertainty(SampleUncertainty.DICE_FOREGROUND) == pytest.approx(1 - 2 / 3)
    assert partial.sample_uncertainty(SampleUncertainty.DICE) == pytest.approx(1 - (2 / 3 + 1) / 2)


def test_class_quantile_thresholds_keep_the_same_share_of_every_class(tmp_path):
    cache = PseudoLabelCache(tmp_path)
    # class 0 pixels very certain, class 1 pixels uncertain: one fixed threshold would drop all of class 1
    probs = torch.zeros(2, 2, 1, 10, 10)
    probs[:, 0, :, :5], probs[:, 1, :, :5] = 0.99, 0.01
    probs[:, 0, :, 5:], probs[:, 1, :, 5:] = 0.35, 0.65
    probs[1, :, 0, 5:, :] += torch.linspace(-0.05, 0.05, 10)[None, None, :] * torch.tensor([1, -1])[:, None, None]
    cache.write("case", EnsembleStatistics.from_probabilities(probs), ["a", "b"], (10, 10), [1])
    thresholds = class_quantile_thresholds(cache, ["case"], PixelUncertainty.ENTROPY, 2, 0.8)
    maps = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, 8, 2, thresholds)
    u, labels = cache.pixel_uncertainty("case", "entropy"), cache.pseudo_label("case")
    kept = maps.weights(u, labels).numpy() > 0
    for c in (0, 1):
        assert kept[labels == c].mean() >= 0.8
    fixed = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, 8, 2)
    assert not (fixed.weights(u).numpy() > 0)[labels == 1].any()


def test_all_levers_at_once_train_and_start_from_the_teacher(pipeline):
    """Copy-paste, per-class quantile masks, foreground oversampling, foreground SUS, teacher init, weak-to-strong
    consistency, a longer schedule and four rounds of refreshed labels together."""
    from batchgenerators.utilities.file_and_folder_operations import load_json

    from nnunet_dumm.trainers.variants import nnUNetTrainerDUMM_test

    class AllLevers(nnUNetTrainerDUMM_test):
        dumm_config = dataclasses.replace(
            nnUNetTrainerDUMM_test.dumm_config, copy_paste=True, pixel_threshold_mode="class_quantile",
            unlabeled_oversample_foreground=0.5, sample_uncertainty="dice_fg", student_init="teacher",
            consistency_weight=1.0, schedule_factor=1.5, round_fractions=(0.5, 1.0, 1.0, 1.0),
            round_epoch_shares=(1.0, 1.0, 1.0, 1.0), student_weight=5.0)

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / "Dataset950_DUMMDemo"
    plans = load_json(str(preprocessed / "nnUNetPlans.json"))
    plans["continue_training"] = False
    trainer = AllLevers(plans, "2d", 1, load_json(str(preprocessed / "dataset.json")), torch.device("cpu"))
    trainer.initialize()
    teacher = torch.load(pipeline["stock"] / "fold_1" / "checkpoint_final.pth", map_location="cpu",
                         weights_only=False)["network_weights"]
    trainer.run_training()
    fold = Path(trainer.output_folder)
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "the student starts from nnUNetTrainerStock_test__nnUNetPlans__2d/fold_1" in log
    assert "per-class thresholds on entropy (keep 90% of each class)" in log
    records = [json.loads(line) for line in (fold / "dumm_metrics.jsonl").read_text().splitlines()]
    assert len(records) == 6  # one and a half times the budget's four epochs
    assert sorted({r["round"] for r in records}) == [1, 2, 3, 4]
    # each later round has labels of its own, made with the student of its transition
    rounds = json.loads((fold / "dumm_pseudo_labels" / "rounds.json").read_text())
    assert sorted(rounds) == ["round2", "round3", "round4"]
    assert len({r["sources"]["student_weights_sha256"] for r in rounds.values()}) == 3
    assert all(r["sources"]["student_weight"] == 5.0 for r in rounds.values())
    assert all(np.isfinite(r["unsup_loss"]) and np.isfinite(r["consistency_loss"]) for r in records)
    assert all(0 <= r["consistency_kept"] <= 1 for r in records)
    ranking = json.loads((fold / "dumm_ranking.json").read_text())
    assert ranking["sample_uncertainty"] == "dice_fg"
    # it trained: the weights moved away from the teacher's it started from
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    assert any(not torch.equal(final[k], teacher[k]) for k in teacher)


def test_cutmix_takes_the_same_box_from_the_partner_at_every_scale():
    from nnunet_dumm.consistency import CutMix

    batch = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 1, 16, 16)
    mix = CutMix.draw(3, (16, 16), probability=1.0, generator=torch.Generator().manual_seed(1))
    assert sorted(mix.partner) == [0, 1, 2]
    mixed = mix.apply(batch)
    coarse = mix.apply(batch[:, :, ::2, ::2])
    for i, ((y, x), (h, w)) in enumerate(mix.boxes):
        inside = torch.zeros(16, 16, dtype=torch.bool)
        inside[y:y + h, x:x + w] = True
        assert (mixed[i, 0][inside] == mix.partner[i]).all() and (mixed[i, 0][~inside] == i).all()
        assert 0.02 * 256 * 0.5 <= inside.sum() <= 0.4 * 256 * 1.5  # 2-40 % of the patch (rounded sides)
        assert (coarse[i, 0] == mix.partner[i]).sum() == pytest.approx(inside.sum() / 4, abs=2 * (h + w))
    assert torch.equal(CutMix((0, 1, 2), (None, None, None), (16, 16)).apply(batch), batch)


def test_the_strong_view_perturbs_intensities_only_and_mixes_by_its_record():
    from nnunet_dumm.consistency import online_targets, strong_view

    generator = torch.Generator().manual_seed(0)
    data = torch.randn(6, 2, 12, 10, generator=generator)
    strong, mix = strong_view(data, generator)
    assert strong.shape == data.shape and torch.isfinite(strong).all()
    assert not torch.equal(strong, data)
    # where no box was pasted, each voxel is a blurred, rescaled version of the same voxel: the correlation with the
    # weak view stays high; pasted boxes come from the partner
    for i, box in enumerate(mix.boxes):
        if box is None:
            assert torch.corrcoef(torch.stack([strong[i].flatten(), data[i].flatten()]))[0, 1] > 0.3
    logits = torch.zeros(6, 3, 12, 10)
    logits[:, 1] = 10.0  # confident class 1 everywhere ...
    logits[0, :, :4] = 0.0  # ... except an uncertain band of patch 0
    targets = online_targets(logits, mix, 0.95, 3)
    expected = mix.apply(torch.where(torch.arange(6).view(6, 1, 1, 1).eq(0) & (torch.arange(12).view(1, 1, 12, 1) < 4),
                                     3, 1).expand(6, 1, 12, 10))
    assert torch.equal(targets, expected)
