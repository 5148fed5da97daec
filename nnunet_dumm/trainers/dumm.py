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
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.helpers import empty_cache
from torch import distributed as dist

from nnunet_dumm.config import DUMMConfig, StudentInit
from nnunet_dumm.consistency import strong_view
from nnunet_dumm.dataloading import LabelMapDataset, build_unlabeled_loader
from nnunet_dumm.diagnostics import plot_diagnostics, pseudo_label_diagnostics
from nnunet_dumm.losses import (
    LabeledPlusPseudoLabelLoss,
    StrongViewTerm,
    WeightedPseudoLabelLoss,
    split_unlabeled_target,
)
from nnunet_dumm.mixing import paste_labeled_into_unlabeled
from nnunet_dumm.pseudo_labels import (
    EnsembleMember,
    PseudoLabelCache,
    PseudoLabelMaps,
    TeacherPass,
    class_location_keys,
    class_quantile_thresholds,
    generate_pseudo_labels,
    load_teacher_members,
    member_from_network,
    sources_key,
    teachers_that_saw,
)
from nnunet_dumm.selection import rank_cases, unlabeled_loss_weight
from nnunet_dumm.uncertainty import PixelThreshold, SampleUncertainty
from nnunet_dumm.unlabeled import (
    TRUE_LABELS_SUBFOLDER,
    completed_cases,
    load_preprocessed_image,
    preprocess_unlabeled,
    preprocessed_shape,
    unlabeled_preprocessed_folder,
)

__all__ = ["nnUNetTrainerDUMM"]

CONFIG_FILE = "dumm_config.json"
RANKING_FILE = "dumm_ranking.json"
METRICS_FILE = "dumm_metrics.jsonl"
# fold_X/<this>/round<N>_<key>: the pseudo-labels of a later SUS round with the student in the ensemble
ROUND_CACHES = "dumm_pseudo_labels"
# which cache folder (and key) each later round of this fold uses, written at the round's transition
ROUND_RECORD = "rounds.json"


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
        self.combined_loss: LabeledPlusPseudoLabelLoss | None = None

    # ----------------------------------------------------------------------------------------- set-up
    def initialize(self):
        if self.configuration_manager.previous_stage_name is not None:
            raise NotImplementedError(
                f"DUMM does not support cascaded configurations ('{self.configuration_name}' needs the "
                f"'{self.configuration_manager.previous_stage_name}' stage's predictions of every unlabeled case); "
                "train the student on 3d_fullres (or 2d) instead")
        # before nnU-Net builds its learning-rate schedule over num_epochs
        self.num_epochs = max(1, round(self.num_epochs * self.dumm_config.schedule_factor))
        super().initialize()
        self.combined_loss = LabeledPlusPseudoLabelLoss(self.loss, self._build_unlabeled_loss())

    def _build_unlabeled_loss(self):
        loss = WeightedPseudoLabelLoss(self.dumm_config.weight_levels, self._masked_label,
                                       self.configuration_manager.batch_dice, ddp=self.is_ddp)
        if self.enable_deep_supervision:
            # the same scale weights as nnU-Net's supervised loss
            return DeepSupervisionWrapper(loss, self.loss.weight_factors)
        return loss

    @property
    def _masked_label(self) -> int:
        """``PseudoLabelMaps.masked_label`` of this dataset's label maps."""
        return self.label_manager.num_segmentation_heads

    @property
    def unlabeled_folder(self) -> Path:
        return unlabeled_preprocessed_folder(self.plans_manager.dataset_name,
                                             self.configuration_manager.data_identifier)

    def _save_or_check_config(self) -> None:
        config_file = Path(self.output_folder) / CONFIG_FILE
        config = self.dumm_config.to_dict()
        if config_file.is_file():
            saved = json.loads(config_file.read_text())
            # a field added since the fold was saved takes its default, which is what that fold trained with
            if DUMMConfig.from_dict(saved).to_dict() != config:
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
        if self.dumm_config.student_init is StudentInit.TEACHER and self.current_epoch == 0:
            self._start_from_teacher()
        self.dumm_ranking = rank_cases(teacher_cache.sample_uncertainty(cases, self.dumm_config.sample_uncertainty))
        if self.local_rank == 0:
            self._write_ranking(teacher_cache)
        self._enter_round(self.dumm_config.schedule.round_at_epoch(self.current_epoch, self.num_epochs),
                          at_transition=False)

    def _start_from_teacher(self) -> None:
        """The student's weights from the teacher of its fold (the first teacher if that fold has none)."""
        folds = self.dumm_teachers.folds
        folder, fold, checkpoint = next((t for t in folds if str(t[1]) == str(self.fold)), folds[0])
        weights = torch.load(folder / f"fold_{fold}" / checkpoint, map_location="cpu",
                             weights_only=False)["network_weights"]
        network = self.network.module if self.is_ddp else self.network
        getattr(network, "_orig_mod", network).load_state_dict(weights)
        self.print_to_log_file(f"DUMM: the student starts from {folder.name}/fold_{fold}/{checkpoint}")

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
        validation = set(self.do_split()[1]) if self.fold != "all" else set()
        self.dumm_teachers = TeacherPass.resolve(
            config.teachers, config.min_models, config.use_mirroring, self.plans_manager, self.configuration_name,
            self.preprocessed_dataset_folder_base, validation if config.leak_free_validation else None)
        leaking = teachers_that_saw(self.dumm_teachers.folds, validation, self.plans_manager.dataset_name)
        if leaking and self.local_rank == 0:
            self.print_to_log_file(
                f"DUMM: {len(leaking)} of {len(self.dumm_teachers.folds)} teachers trained on this fold's validation "
                f"cases ({', '.join(f'{f.name}/fold_{k}' for f, k, _ in leaking)}): this fold's validation Dice, "
                "checkpoint_best and nnUNetv2_find_best_configuration are optimistic against stock folds. Test-set "
                "predictions are unaffected; for honest cross-validation train nnUNetTrainerDUMM_leakFree.")
        if not all(self.dumm_teachers.cache.intact(c) for c in cases):
            self._run_pass(self._teacher_members(), cases, self.dumm_teachers.cache, self.dumm_teachers.sources)
            self._release_teachers()
        else:
            self.print_to_log_file(f"pseudo-labels: all {len(cases)} cases of {len(self.dumm_teachers.folds)} "
                                   f"teachers are cached in {self.dumm_teachers.cache.folder}")
        return self.dumm_teachers.cache

    def _teacher_members(self) -> list[EnsembleMember]:
        return load_teacher_members(self.dumm_teachers.folds, self.plans_manager, self.configuration_manager,
                                    self.dataset_json, self.device, self.dumm_config.use_mirroring)

    def _release_teachers(self) -> None:
        # the teachers' networks are garbage once the pass is done; give their GPU memory back to training
        empty_cache(self.device)

    def _run_pass(self, members: list[EnsembleMember], cases: list[str], cache: PseudoLabelCache,
                  sources: dict, base: PseudoLabelCache | None = None, member_weight: float = 1.0) -> None:
        num_parts, part_id = self._shard()
        generate_pseudo_labels(members, cases, self._load_unlabeled_image, cache, sources,
                               class_location_keys(self.label_manager), base=base, member_weight=member_weight,
                               num_parts=num_parts, part_id=part_id, verbose=self.local_rank == 0,
                               log=self.print_to_log_file,
                               case_shape=lambda case: preprocessed_shape(self.unlabeled_folder, case))
        self._barrier()

    def _student_member(self) -> EnsembleMember:
        network = self.network.module if self.is_ddp else self.network
        network = getattr(network, "_orig_mod", network)  # torch.compile wrapper
        return member_from_network(f"student@epoch{self.current_epoch}", network, self.configuration_manager,
                                   self.label_manager, self.inference_allowed_mirroring_axes, self.device,
                                   self.dumm_config.use_mirroring)

    def _round_cache(self, round_index: int, student: EnsembleMember | None, selection: list[str],
                     at_transition: bool) -> tuple[PseudoLabelCache, dict]:
        """Round 0 (or a round without the student) uses the teachers' shared cache; later rounds their own.

        A later round's cache is keyed by the teachers and the student's weights at the round's transition, like
        the teachers' cache, so a fold trained again from scratch never reuses the labels of an earlier student;
        caches of this fold's earlier students are removed. The key is recorded at the transition: a run resumed
        from a checkpoint written later in the round (nnU-Net's periodic ``checkpoint_latest.pth``) holds other
        weights and must find the round's labels by that record, not by its own weights (unless those labels are
        gone: then they are made again, by the student as it is now, under its own key).
        """
        if round_index == 0 or not self.dumm_config.student_joins_ensemble:
            return self.dumm_teachers.cache, self.dumm_teachers.sources
        folder = Path(self.output_folder) / ROUND_CACHES
        record_file, round_name = folder / ROUND_RECORD, f"round{round_index + 1}"
        records = json.loads(record_file.read_text()) if record_file.is_file() else {}
        recorded = None if at_transition else records.get(round_name)
        if recorded and all(PseudoLabelCache(folder / recorded["folder"]).done(c) for c in selection):
            sources, name = recorded["sources"], recorded["folder"]
        else:
            sources = {"teachers": self.dumm_teachers.sources,
                       "student_weights_sha256": _state_dict_digest(student.window.network.state_dict()),
                       "student_weight": self.dumm_config.student_weight}
            name = f"{round_name}_{sources_key(sources)}"
        if self.local_rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob(f"{round_name}_*"):
                if stale.name != name:
                    shutil.rmtree(stale)
            records[round_name] = {"folder": name, "sources": sources}
            temporary = record_file.with_suffix(".partial")
            temporary.write_text(json.dumps(records, indent=1))
            os.replace(temporary, record_file)
        self._barrier()
        return PseudoLabelCache(folder / name), sources

    def _enter_round(self, round_index: int, at_transition: bool) -> None:
        """Starts a SUS round: at its transition epoch, or where a resumed run stands (``at_transition=False``)."""
        config = self.dumm_config
        selection = config.schedule.select(self.dumm_ranking, round_index)
        joins = round_index > 0 and config.student_joins_ensemble
        student = self._student_member() if joins else None
        cache, sources = self._round_cache(round_index, student, selection, at_transition)
        if joins and not all(cache.done(c) for c in selection):
            self.set_deep_supervision_enabled(False)
            # the student is added to the teachers' cached statistics: the teachers do not run again
            self._run_pass([student], selection, cache, sources, base=self.dumm_teachers.cache,
                           member_weight=config.student_weight)
            self.set_deep_supervision_enabled(self.enable_deep_supervision)
            self.network.train()
        label_maps = self._label_maps(cache, selection)
        if self.local_rank == 0:
            # the teachers' pass covers the whole pool; a round's own pass only its selection
            self._write_diagnostics(cache, self.dumm_ranking if cache is self.dumm_teachers.cache else selection,
                                    round_index, label_maps)
        dataset = LabelMapDataset(str(self.unlabeled_folder), selection, str(cache.folder), label_maps)
        self.dumm_round_stats = _selection_stats(label_maps, cache, selection)
        batch_size = max(1, round(config.unlabeled_batch_ratio * self.batch_size))
        if self.unlabeled_loader is not None:
            self._shutdown_unlabeled_loader()
        self.unlabeled_loader = build_unlabeled_loader(self.dataloader_train, self.label_manager, dataset,
                                                       batch_size, config.unlabeled_oversample_foreground)
        self.dumm_round, self.dumm_selection = round_index, selection
        self.print_to_log_file(
            f"DUMM round {round_index + 1}/{config.schedule.num_rounds}: {len(selection)} of "
            f"{len(self.dumm_ranking)} unlabeled cases (pseudo-labels: {cache.folder}); "
            f"mean pixel uncertainty {self.dumm_round_stats['mean_uncertainty']:.4f}, "
            f"pixels kept {self.dumm_round_stats['kept_fraction']:.3f}"
        )

    def _label_maps(self, cache: PseudoLabelCache, selection: list[str]) -> PseudoLabelMaps:
        """How this round's cache entries become label maps (with per-class thresholds of its selection)."""
        config = self.dumm_config
        num_classes = self.label_manager.num_segmentation_heads
        thresholds = None
        if config.pixel_threshold_mode is PixelThreshold.CLASS_QUANTILE:
            thresholds = class_quantile_thresholds(cache, selection, config.pixel_uncertainty, num_classes,
                                                   config.pixel_keep_quantile)
            self.print_to_log_file(f"DUMM: per-class thresholds on {config.pixel_uncertainty.value} "
                                   f"(keep {config.pixel_keep_quantile:.0%} of each class): "
                                   + ", ".join(f"{t:.3f}" for t in thresholds))
        return PseudoLabelMaps(config.pixel_uncertainty, config.pixel_weighting, config.pixel_threshold,
                               config.weight_levels, num_classes, thresholds)

    def _write_diagnostics(self, cache: PseudoLabelCache, cases: list[str], round_index: int,
                           label_maps: PseudoLabelMaps) -> None:
        """Pseudo-label quality against true labels (labelsUnlabeled/), when the dataset has them."""
        config = self.dumm_config
        true_labels = self.unlabeled_folder / TRUE_LABELS_SUBFOLDER
        diagnostics = pseudo_label_diagnostics(cache, cases, true_labels, label_maps,
                                               self.label_manager.ignore_label)
        if diagnostics is None:
            return
        stem = Path(self.output_folder) / f"dumm_diagnostics_round{round_index + 1}"
        stem.with_suffix(".json").write_text(json.dumps(diagnostics, indent=1))
        plot_diagnostics(diagnostics, cache, self._load_unlabeled_image, config.sample_uncertainty.value,
                         config.pixel_uncertainty.value, stem.with_suffix(".png"), true_labels)
        pixel = diagnostics["pixel_accuracy"][config.pixel_uncertainty.value]
        kept_per_class = ", ".join("-" if share is None else f"{share:.3f}"
                                   for share in pixel["kept_fraction_per_true_class"])
        self.print_to_log_file(
            f"DUMM diagnostics round {round_index + 1} ({diagnostics['num_cases']} cases with true labels): "
            f"pseudo-label Dice {diagnostics['pseudo_label_dice_mean']:.4f}; pixel accuracy kept "
            f"{pixel['kept_accuracy']} vs masked {pixel['masked_accuracy']} ({config.pixel_uncertainty.value}), "
            f"share kept per true class {kept_per_class}; "
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
            self._save_transition_checkpoint()
            self._enter_round(round_index, at_transition=True)
        super().on_train_epoch_start()

    def _save_transition_checkpoint(self) -> None:
        """A checkpoint of exactly this student, so a crash during the coming pass resumes with the same weights.

        nnU-Net stores ``current_epoch + 1`` because it saves at an epoch's end; this is an epoch's start.
        """
        epoch = self.current_epoch
        self.current_epoch = epoch - 1
        try:
            self.save_checkpoint(str(Path(self.output_folder) / "checkpoint_latest.pth"))
        finally:
            self.current_epoch = epoch

    def train_step(self, batch: dict) -> dict:
        """nnU-Net's own ``train_step`` (autocast, grad scaler, clipping) on labeled + unlabeled patches at once.

        One forward pass over both batches: nnU-Net's networks normalise per instance, so this equals two passes.
        The targets are stacked along the batch (labeled ones get an unused weight channel where the unlabeled
        maps have one), and for this step ``self.loss`` is the combined loss that splits the batch again. With
        weak-to-strong consistency the strong views of the unlabeled patches follow them in the same pass.
        """
        config = self.dumm_config
        unlabeled = next(self.unlabeled_loader)
        data, targets = unlabeled["data"], _as_list(unlabeled["target"])
        if config.copy_paste:
            data, targets = paste_labeled_into_unlabeled(
                batch["data"], _as_list(batch["target"]), data, targets, config.copy_paste_box, config.weight_levels,
                self._masked_label, self.label_manager.ignore_label)
        combined = self.combined_loss
        combined.num_labeled = batch["data"].shape[0]
        combined.weight = unlabeled_loss_weight(self.current_epoch, self.num_epochs, config.lambda_max,
                                                config.rampup_fraction)
        combined.strong = None
        kept = split_unlabeled_target(targets[0], config.weight_levels, self._masked_label)[1] > 0
        if config.consistency_weight > 0:
            strong, mix = strong_view(data)
            combined.strong = StrongViewTerm(data.shape[0], mix, config.consistency_threshold, self._masked_label,
                                             config.consistency_weight)
            data = torch.cat((data, strong))
            targets = [torch.cat((t, torch.zeros_like(t))) for t in targets]  # placeholders: made in the loss
        stacked_targets = [combined.stack_targets(t, u) for t, u in zip(_as_list(batch["target"]), targets)]
        stacked = {"data": torch.cat((batch["data"], data)),
                   "target": stacked_targets if isinstance(batch["target"], (list, tuple)) else stacked_targets[0]}
        supervised_loss, self.loss = self.loss, combined
        try:
            result = super().train_step(stacked)
        finally:
            self.loss = supervised_loss
        return {**result, **combined.last_terms, "kept_fraction": kept.float().mean().numpy()}

    def on_train_epoch_end(self, train_outputs: list[dict]):
        super().on_train_epoch_end(train_outputs)
        outputs = collate_outputs(train_outputs)
        stats = {k: float(np.mean(outputs[k])) for k in ("sup_loss", "unsup_loss", "kept_fraction",
                                                         "consistency_loss", "consistency_kept") if k in outputs}
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
        u = cache.pixel_uncertainty(case, label_maps.pixel_uncertainty)
        uncertainty.append(float(u.mean()) / 255)
        kept.append(float((label_maps.weights(u, cache.pseudo_label(case)) > 0).float().mean()))
    return {"mean_uncertainty": float(np.mean(uncertainty)), "kept_fraction": float(np.mean(kept))}


def _state_dict_digest(state_dict: dict) -> str:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
