"""nnUNetTrainerDUMM: a thin nnU-Net trainer that wires PUM pseudo-labels, SUS rounds and the weighted loss.

What it changes in nnU-Net's training loop:
* ``on_train_start``: preprocesses new unlabeled images, runs (or resumes) the teachers' pseudo-label pass,
  ranks the unlabeled cases and enters the SUS round of the current epoch;
* ``on_train_epoch_start``: at a round boundary, saves a checkpoint (so a crash during the next pass resumes
  with the same student), regenerates pseudo-labels (the student may join the ensemble) and takes more cases;
* ``train_step``: one forward pass on labeled + unlabeled patches; loss = nnU-Net's supervised loss
  + lambda(t) * the uncertainty-weighted pseudo-label loss;
* ``on_train_epoch_end``: logs supervised/unlabeled losses, kept pixels, uncertainty, round, selection.
The network, checkpoints and ``checkpoint_final.pth`` are nnU-Net's own, so stock ``nnUNetv2_predict`` and
``nnUNetv2_ensemble`` work on the results folder. The round is derived from the epoch, the ranking from the
teachers' cache, so ``--c`` resumes in the same round with the same selection.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.helpers import dummy_context
from torch import distributed as dist

from nnunet_dumm.config import DUMMConfig
from nnunet_dumm.dataloading import LabelMapDataset, build_unlabeled_loader
from nnunet_dumm.diagnostics import plot_diagnostics, pseudo_label_diagnostics
from nnunet_dumm.losses import WeightedPseudoLabelLoss
from nnunet_dumm.pseudo_labels import (
    EnsembleMember,
    PseudoLabelCache,
    PseudoLabelMaps,
    TeacherPass,
    generate_pseudo_labels,
    load_teacher_members,
)
from nnunet_dumm.selection import rank_cases, unlabeled_loss_weight
from nnunet_dumm.uncertainty import SampleUncertainty
from nnunet_dumm.unlabeled import (
    TRUE_LABELS_SUBFOLDER,
    completed_cases,
    load_preprocessed_image,
    preprocess_unlabeled,
    unlabeled_preprocessed_folder,
)

__all__ = ["nnUNetTrainerDUMM"]

CONFIG_FILE = "dumm_config.json"
RANKING_FILE = "dumm_ranking.json"
METRICS_FILE = "dumm_metrics.jsonl"


class nnUNetTrainerDUMM(nnUNetTrainer):
    """Student trained on labeled images and multi-model pseudo-labels of unlabeled images (DUMM)."""

    dumm_config: ClassVar[DUMMConfig] = DUMMConfig()

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.dumm_round: int | None = None
        self.dumm_ranking: list[str] = []
        self.dumm_selection: list[str] = []
        self.dumm_round_stats: dict = {}
        self.unlabeled_loader = None
        self.unlabeled_loss = None
        self._dumm_teacher_members: list[EnsembleMember] | None = None

    # ----------------------------------------------------------------------------------------- set-up
    def initialize(self):
        super().initialize()
        self.unlabeled_loss = self._build_unlabeled_loss()

    def _build_unlabeled_loss(self):
        loss = WeightedPseudoLabelLoss(self.dumm_config.weight_levels, self.configuration_manager.batch_dice,
                                       ddp=self.is_ddp)
        if self.enable_deep_supervision:
            # the same scale weights as nnU-Net's supervised loss
            return DeepSupervisionWrapper(loss, self.loss.weight_factors)
        return loss

    @property
    def unlabeled_folder(self) -> Path:
        return unlabeled_preprocessed_folder(self.plans_manager.dataset_name,
                                             self.configuration_manager.data_identifier)

    def _save_or_check_config(self) -> None:
        config_file = Path(self.output_folder) / CONFIG_FILE
        config = self.dumm_config.to_dict()
        if config_file.is_file():
            saved = json.loads(config_file.read_text())
            if saved != config:
                raise RuntimeError(f"{config_file}: this fold was trained with another DUMM config; start a new "
                                   f"output folder or restore the config. Saved: {saved}; now: {config}")
        else:
            self.dumm_config.save(config_file)

    def on_train_start(self):
        if self.plans_manager.get_label_manager(self.dataset_json).has_regions:
            raise NotImplementedError("DUMM does not support region-based datasets: pseudo-labels are label maps")
        super().on_train_start()
        if self.local_rank == 0:
            self._save_or_check_config()
            self._drop_metrics_from_current_epoch()
            preprocess_unlabeled(self.plans_manager.dataset_name, self.configuration_name,
                                 self.plans_manager.plans_name, verbose=True)
        self._barrier()
        cases = completed_cases(self.unlabeled_folder)
        teacher_cache = self._teacher_pass(cases)
        self.dumm_ranking = rank_cases(teacher_cache.sample_uncertainty(cases, self.dumm_config.sample_uncertainty))
        if self.local_rank == 0:
            self._write_ranking(teacher_cache)
        self._enter_round(self.dumm_config.schedule.round_at_epoch(self.current_epoch, self.num_epochs))

    def _drop_metrics_from_current_epoch(self) -> None:
        # A run killed after its last checkpoint logged epochs that --c trains again (or, without any checkpoint,
        # all of them); a kill during the append can leave a torn last line.
        metrics_file = Path(self.output_folder) / METRICS_FILE
        if not metrics_file.is_file():
            return
        kept = []
        for line in metrics_file.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record["epoch"] < self.current_epoch:
                kept.append(line + "\n")
        temporary = metrics_file.with_name(f".{METRICS_FILE}.partial")
        temporary.write_text("".join(kept))
        os.replace(temporary, metrics_file)

    def _barrier(self) -> None:
        if self.is_ddp:
            dist.barrier()

    def _shard(self) -> tuple[int, int]:
        # DDP ranks each label their share of the cases into the same cache
        return (dist.get_world_size(), dist.get_rank()) if self.is_ddp else (1, 0)

    def _load_unlabeled_image(self, case: str) -> np.ndarray:
        return load_preprocessed_image(self.unlabeled_folder, case)

    def _teacher_pass(self, cases: list[str]) -> PseudoLabelCache:
        """Pseudo-labels of every unlabeled case by the teachers: shared by all folds, computed once."""
        config = self.dumm_config
        self.dumm_teachers = TeacherPass.resolve(config.teachers, config.min_models, config.use_mirroring,
                                                 self.plans_manager, self.configuration_name,
                                                 self.preprocessed_dataset_folder_base)
        if not all(self.dumm_teachers.cache.done(c) for c in cases):
            self._run_pass(self._teacher_members(), cases, self.dumm_teachers.cache, self.dumm_teachers.sources)
        return self.dumm_teachers.cache

    def _teacher_members(self) -> list[EnsembleMember]:
        # loaded once per process: finding the teachers' trainer classes alone costs nnU-Net ~10 s
        if self._dumm_teacher_members is None:
            self._dumm_teacher_members = load_teacher_members(
                self.dumm_teachers.folds, self.plans_manager, self.configuration_manager, self.dataset_json,
                self.device, self.dumm_config.use_mirroring)
        return self._dumm_teacher_members

    def _run_pass(self, members: list[EnsembleMember], cases: list[str], cache: PseudoLabelCache,
                  sources: dict) -> None:
        num_parts, part_id = self._shard()
        generate_pseudo_labels(members, cases, self._load_unlabeled_image, cache, sources, num_parts, part_id,
                               verbose=self.local_rank == 0, log=self.print_to_log_file)
        self._barrier()

    def _student_member(self) -> EnsembleMember:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        network = self.network.module if self.is_ddp else self.network
        predictor = nnUNetPredictor(device=self.device, use_mirroring=self.dumm_config.use_mirroring,
                                    perform_everything_on_device=False, allow_tqdm=False)
        predictor.manual_initialization(network, self.plans_manager, self.configuration_manager, None,
                                        self.dataset_json, self.__class__.__name__,
                                        self.inference_allowed_mirroring_axes)
        return EnsembleMember(f"student@epoch{self.current_epoch}", predictor)

    def _round_cache(self, round_index: int) -> PseudoLabelCache:
        """Round 0 (or a round without the student) uses the teachers' shared cache; later rounds their own."""
        if round_index == 0 or not self.dumm_config.student_joins_ensemble:
            return self.dumm_teachers.cache
        return PseudoLabelCache(Path(self.output_folder) / f"dumm_pseudo_labels_round{round_index + 1}")

    def _enter_round(self, round_index: int) -> None:
        config = self.dumm_config
        selection = config.schedule.select(self.dumm_ranking, round_index)
        cache = self._round_cache(round_index)
        if cache is not self.dumm_teachers.cache and not all(cache.done(c) for c in selection):
            self.set_deep_supervision_enabled(False)
            student = self._student_member()
            sources = {"teachers": self.dumm_teachers.sources,
                       "student_weights_sha256": _state_dict_digest(student.predictor.network.state_dict())}
            self._run_pass(self._teacher_members() + [student], selection, cache, sources)
            self.set_deep_supervision_enabled(self.enable_deep_supervision)
            self.network.train()
        if self.local_rank == 0:
            # the teachers' pass covers the whole pool; a round's own pass only its selection
            self._write_diagnostics(cache, self.dumm_ranking if cache is self.dumm_teachers.cache else selection,
                                    round_index)
        label_maps = PseudoLabelMaps(str(cache.folder), config.pixel_uncertainty, config.pixel_weighting,
                                     config.pixel_threshold, config.weight_levels,
                                     self.label_manager.num_segmentation_heads)
        dataset = LabelMapDataset(str(self.unlabeled_folder), selection, label_maps)
        self.dumm_round_stats = _selection_stats(label_maps, cache, selection)
        batch_size = max(1, round(config.unlabeled_batch_ratio * self.batch_size))
        if self.unlabeled_loader is not None:
            self._shutdown_unlabeled_loader()
        self.unlabeled_loader = build_unlabeled_loader(self, dataset, batch_size)
        self.dumm_round, self.dumm_selection = round_index, selection
        self.print_to_log_file(
            f"DUMM round {round_index + 1}/{config.schedule.num_rounds}: {len(selection)} of "
            f"{len(self.dumm_ranking)} unlabeled cases (pseudo-labels: {cache.folder}); "
            f"mean pixel uncertainty {self.dumm_round_stats['mean_uncertainty']:.4f}, "
            f"pixels kept {self.dumm_round_stats['kept_fraction']:.3f}"
        )

    def _write_diagnostics(self, cache: PseudoLabelCache, cases: list[str], round_index: int) -> None:
        """Pseudo-label quality against true labels (labelsUnlabeled/), when the dataset has them."""
        config = self.dumm_config
        true_labels = self.unlabeled_folder / TRUE_LABELS_SUBFOLDER
        diagnostics = pseudo_label_diagnostics(cache, cases, true_labels, self.label_manager.num_segmentation_heads,
                                               config.pixel_threshold)
        if diagnostics is None:
            return
        stem = Path(self.output_folder) / f"dumm_diagnostics_round{round_index + 1}"
        stem.with_suffix(".json").write_text(json.dumps(diagnostics, indent=1))
        plot_diagnostics(diagnostics, cache, self._load_unlabeled_image, config.sample_uncertainty.value,
                         config.pixel_uncertainty.value, stem.with_suffix(".png"), true_labels)
        pixel = diagnostics["pixel_accuracy"][config.pixel_uncertainty.value]
        self.print_to_log_file(
            f"DUMM diagnostics round {round_index + 1} ({diagnostics['num_cases']} cases with true labels): "
            f"pseudo-label Dice {diagnostics['pseudo_label_dice_mean']:.4f}; pixel accuracy kept "
            f"{pixel['kept_accuracy']} vs masked {pixel['masked_accuracy']} ({config.pixel_uncertainty.value}); "
            f"Spearman(U, error) {diagnostics['spearman_U_vs_error'][config.sample_uncertainty.value]} -> {stem}.json")

    def _write_ranking(self, cache: PseudoLabelCache) -> None:
        measures = {m.value: cache.sample_uncertainty(self.dumm_ranking, m) for m in SampleUncertainty}
        ranking = [{"case": c, "rank": i, **{f"U_{m}": measures[m][c] for m in measures}}
                   for i, c in enumerate(self.dumm_ranking)]
        (Path(self.output_folder) / RANKING_FILE).write_text(json.dumps(
            {"sample_uncertainty": self.dumm_config.sample_uncertainty.value, "pseudo_labels": str(cache.folder),
             "ranking": ranking}, indent=1))

    def _shutdown_unlabeled_loader(self) -> None:
        if hasattr(self.unlabeled_loader, "_finish"):
            self.unlabeled_loader._finish()

    def save_checkpoint(self, filename: str) -> None:
        # nnU-Net writes checkpoints in place; a kill during the write would leave a corrupt checkpoint_latest.pth
        # that --c then fails on. Write to a temporary name and rename (atomic on POSIX).
        temporary = f"{filename}.partial"
        super().save_checkpoint(temporary)
        if os.path.isfile(temporary):
            os.replace(temporary, filename)

    # ----------------------------------------------------------------------------------------- training
    def on_train_epoch_start(self):
        round_index = self.dumm_config.schedule.round_at_epoch(self.current_epoch, self.num_epochs)
        if round_index != self.dumm_round:
            # A checkpoint of exactly this student: a crash during the coming pass resumes with the same weights.
            # nnU-Net stores current_epoch + 1 because it saves at an epoch's end; this is an epoch's start.
            self.current_epoch -= 1
            self.save_checkpoint(str(Path(self.output_folder) / "checkpoint_latest.pth"))
            self.current_epoch += 1
            self._enter_round(round_index)
        super().on_train_epoch_start()

    def train_step(self, batch: dict) -> dict:
        unlabeled = next(self.unlabeled_loader)
        num_labeled = batch["data"].shape[0]
        # One forward pass over both batches: nnU-Net's networks normalise per instance, so this equals two passes.
        data = torch.cat((batch["data"], unlabeled["data"])).to(self.device, non_blocking=True)
        target = [t.to(self.device, non_blocking=True) for t in _as_list(batch["target"])]
        target_u = [t.to(self.device, non_blocking=True) for t in _as_list(unlabeled["target"])]
        weight = unlabeled_loss_weight(self.current_epoch, self.num_epochs, self.dumm_config.lambda_max,
                                       self.dumm_config.rampup_fraction)

        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            output = _as_list(self.network(data))
            output_l = [o[:num_labeled] for o in output]
            output_u = [o[num_labeled:] for o in output]
            if self.enable_deep_supervision:
                sup_loss = self.loss(output_l, target)
                unsup_loss = self.unlabeled_loss(output_u, target_u)
            else:
                sup_loss = self.loss(output_l[0], target[0])
                unsup_loss = self.unlabeled_loss(output_u[0], target_u[0])
            loss = sup_loss + weight * unsup_loss

        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return {
            "loss": loss.detach().cpu().numpy(),
            "sup_loss": sup_loss.detach().cpu().numpy(),
            "unsup_loss": unsup_loss.detach().cpu().numpy(),
            "kept_fraction": (target_u[0][:, 1] > 0).float().mean().cpu().numpy(),
        }

    def on_train_epoch_end(self, train_outputs: list[dict]):
        super().on_train_epoch_end(train_outputs)
        outputs = collate_outputs(train_outputs)
        stats = {k: float(np.mean(outputs[k])) for k in ("sup_loss", "unsup_loss", "kept_fraction")}
        if self.is_ddp:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, stats)
            stats = {k: float(np.mean([g[k] for g in gathered])) for k in stats}
        record = {
            "epoch": self.current_epoch,
            "round": self.dumm_round + 1,
            "selected_cases": len(self.dumm_selection),
            "lambda": unlabeled_loss_weight(self.current_epoch, self.num_epochs, self.dumm_config.lambda_max,
                                            self.dumm_config.rampup_fraction),
            **stats,
            "batch_kept_fraction": stats.pop("kept_fraction"),
            **self.dumm_round_stats,
        }
        self.print_to_log_file("DUMM " + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
        if self.local_rank == 0:
            with open(Path(self.output_folder) / METRICS_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")

    def on_train_end(self):
        self._shutdown_unlabeled_loader()
        super().on_train_end()


def _as_list(x):
    return x if isinstance(x, (list, tuple)) else [x]


def _selection_stats(label_maps: PseudoLabelMaps, cache: PseudoLabelCache, selection: list[str]) -> dict:
    """Mean pixel uncertainty and fraction of pixels with a non-zero weight over a round's cases."""
    uncertainty, kept = [], []
    for case in selection:
        entry = cache.load(case)
        uncertainty.append(float(entry[f"u_{label_maps.pixel_uncertainty.value}"].mean()) / 255)
        kept.append(float((label_maps.weights(entry) > 0).float().mean()))
    return {"mean_uncertainty": float(np.mean(uncertainty)), "kept_fraction": float(np.mean(kept))}


def _state_dict_digest(state_dict: dict) -> str:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
