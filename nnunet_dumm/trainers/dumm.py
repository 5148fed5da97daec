"""nnUNetTrainerDUMM: a thin nnU-Net trainer that wires PUM pseudo-labels, SUS rounds and the masked loss.

What it changes in nnU-Net's training loop:
* ``on_train_start``: preprocesses new unlabeled images, runs (or resumes) the teachers' pseudo-label pass,
  ranks the unlabeled cases and enters the SUS round of the current epoch;
* ``on_train_epoch_start``: at a round boundary, saves a checkpoint (so a crash during the next pass resumes
  with the same student), regenerates pseudo-labels (the student may join the ensemble) and takes more cases;
* ``train_step``: nnU-Net's supervised loss on a labeled batch + lambda(t) * the masked pseudo-label loss on an
  unlabeled batch, in two forward/backward passes whose gradients add up before one optimiser step;
* ``on_train_epoch_end``: logs supervised/unlabeled losses, kept pixels, uncertainty, round, selection.
The network, checkpoints and ``checkpoint_final.pth`` are nnU-Net's own, so stock ``nnUNetv2_predict`` and
``nnUNetv2_ensemble`` work on the results folder; the deployable checkpoints name ``nnUNetTrainer``, so plain
nnU-Net predicts with them without this package (``on_train_end``). The round is derived from the epoch, the ranking from the
teachers' cache, so ``--c`` resumes in the same round with the same selection.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from nnunetv2.configuration import default_num_processes
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.helpers import dummy_context, empty_cache
from torch import autocast
from torch import distributed as dist

from nnunet_dumm.cache import CacheContents, PseudoLabelCache, sources_key
from nnunet_dumm.config import PAPER_CONFIG, DUMMConfig, LegacyConfigError
from nnunet_dumm.dataloading import LabelMapDataset, build_unlabeled_loader
from nnunet_dumm.diagnostics import append_record, drop_records_from_epoch, write_round_diagnostics
from nnunet_dumm.label_maps import PseudoLabelMaps, class_quantile_thresholds, selection_statistics
from nnunet_dumm.losses import WeightedPseudoLabelLoss
from nnunet_dumm.pseudo_labels import class_location_keys, generate_pseudo_labels
from nnunet_dumm.selection import rank_cases, unlabeled_loss_weight
from nnunet_dumm.teachers import (
    EnsembleMember,
    TeacherModelsIncompatible,
    TeacherModelsMissing,
    TeacherPass,
    load_teacher_members,
    member_from_network,
    teachers_that_saw,
    weights_digest,
)
from nnunet_dumm.uncertainty import PixelThreshold, SampleUncertainty
from nnunet_dumm.unlabeled import (
    TRUE_LABELS_SUBFOLDER,
    UnlabeledDataError,
    completed_cases,
    load_preprocessed_image,
    preprocess_unlabeled,
    preprocessed_fingerprint,
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
        self.unlabeled_loss = None

    # ----------------------------------------------------------------------------------------- set-up
    def initialize(self):
        if self.configuration_manager.previous_stage_name is not None:
            raise NotImplementedError(
                f"DUMM does not support cascaded configurations ('{self.configuration_name}' needs the "
                f"'{self.configuration_manager.previous_stage_name}' stage's predictions of every unlabeled case); "
                "train the student on 3d_fullres (or 2d) instead")
        super().initialize()
        self.unlabeled_loss = self._build_unlabeled_loss()

    def _build_unlabeled_loss(self):
        loss = WeightedPseudoLabelLoss(self._masked_label, self.configuration_manager.batch_dice, ddp=self.is_ddp)
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
        """Saves the config beside the fold; a resumed fold must have been trained with the same one."""
        config_file = Path(self.output_folder) / CONFIG_FILE
        if not config_file.is_file():
            self.dumm_config.save(config_file)
            return
        try:
            # a field added since the fold was saved takes its default, which is what that fold trained with
            saved = DUMMConfig.load(config_file)
        except LegacyConfigError as e:
            raise RuntimeError(f"{config_file}: {e}") from None
        if saved.to_dict() != self.dumm_config.to_dict():
            raise RuntimeError(self._config_mismatch_message(saved, config_file))

    def _config_mismatch_message(self, saved: DUMMConfig, config_file: Path) -> str:
        now, name = self.dumm_config, self.__class__.__name__
        changed = ", ".join(f"{field} {saved.to_dict()[field]!r} -> {now.to_dict()[field]!r}"
                            for field in now.method_differs(saved)) or "teachers"
        message = f"{config_file}: this fold was trained with another DUMM config ({changed})."
        if saved.pixel_threshold_mode is PixelThreshold.FIXED and now.pixel_threshold_mode is not PixelThreshold.FIXED:
            message += (" nnunet_dumm 0.2.0 moved nnUNetTrainerDUMM and its variants from the paper's fixed mask to "
                        "the class-quantile mask and named the paper's setting nnUNetTrainerDUMM_paper (CHANGELOG.md).")
        if not saved.method_differs(PAPER_CONFIG) and name.startswith("nnUNetTrainerDUMM"):
            paper, model_folder = name.replace("nnUNetTrainerDUMM", "nnUNetTrainerDUMM_paper", 1), \
                Path(self.output_folder_base)
            message += (f" To continue the fold as it began, rename {model_folder} to "
                        f"{model_folder.name.replace(name, paper, 1)} and run nnUNetv2_train "
                        f"{self.plans_manager.dataset_name} {self.configuration_name} {self.fold} -tr {paper} "
                        f"-p {self.plans_manager.plans_name} --c.")
        return message + (f" To train it with {name} as it is now, delete {self.output_folder} and run "
                          "nnUNetv2_train without --c.")

    def on_train_start(self):
        if self.plans_manager.get_label_manager(self.dataset_json).has_regions:
            raise NotImplementedError("DUMM does not support region-based datasets: pseudo-labels are label maps")
        super().on_train_start()
        try:
            self._start_dumm()
        except (TeacherModelsMissing, TeacherModelsIncompatible, UnlabeledDataError):
            self._remove_refused_start()
            raise

    def _remove_refused_start(self) -> None:
        """A start refused before the fold trained (teachers missing, bad unlabeled input) leaves no fold folder
        behind; a fold with a checkpoint keeps everything."""
        fold_folder = Path(self.output_folder)
        if self.local_rank == 0 and not any(fold_folder.glob("checkpoint_*.pth")):
            shutil.rmtree(fold_folder, ignore_errors=True)

    def _start_dumm(self) -> None:
        if self.local_rank == 0:
            self._save_or_check_config()
            # a run killed after its last checkpoint logged epochs that --c trains again
            drop_records_from_epoch(Path(self.output_folder) / METRICS_FILE, self.current_epoch)
        # every rank preprocesses: they split the new cases by claiming them, with nnU-Net's background workers
        # (nnUNet_def_n_proc) shared among the ranks
        world_size = dist.get_world_size() if self.is_ddp else 1
        preprocess_unlabeled(self.plans_manager.dataset_name, self.configuration_name, self.plans_manager.plans_name,
                             num_processes=max(1, default_num_processes // world_size), verbose=self.local_rank == 0)
        self._barrier()
        cases = completed_cases(self.unlabeled_folder)
        teacher_cache = self._teacher_pass(cases)
        self.dumm_ranking = rank_cases(teacher_cache.sample_uncertainty(cases, self.dumm_config.sample_uncertainty))
        if self.local_rank == 0:
            self._write_ranking(teacher_cache)
        self._enter_round(self.dumm_config.schedule.round_at_epoch(self.current_epoch, self.num_epochs),
                          at_transition=False)

    def _barrier(self) -> None:
        if self.is_ddp:
            dist.barrier()

    def _shard(self) -> tuple[int, int]:
        # DDP ranks each label their share of the cases into the same cache
        return (dist.get_world_size(), dist.get_rank()) if self.is_ddp else (1, 0)

    def _load_unlabeled_image(self, case: str) -> np.ndarray:
        return load_preprocessed_image(self.unlabeled_folder, case)

    def _image_fingerprint(self, case: str):
        return preprocessed_fingerprint(self.unlabeled_folder, case)

    def _teacher_pass(self, cases: list[str]) -> PseudoLabelCache:
        """Pseudo-labels of every unlabeled case by the teachers: shared by all folds, computed once."""
        config = self.dumm_config
        validation = set(self.do_split()[1]) if self.fold != "all" else set()
        self.dumm_teachers = TeacherPass.resolve(config, self.plans_manager, self.configuration_name,
                                                 self.preprocessed_dataset_folder_base,
                                                 validation if config.leak_free_validation else None)
        leaking = teachers_that_saw(self.dumm_teachers.folds, validation, self.plans_manager.dataset_name)
        if leaking and self.local_rank == 0:
            self.print_to_log_file(
                f"DUMM: {len(leaking)} of {len(self.dumm_teachers.folds)} teachers trained on this fold's validation "
                f"cases ({', '.join(f'{f.name}/fold_{k}' for f, k, _ in leaking)}): this fold's validation Dice, "
                "checkpoint_best and nnUNetv2_find_best_configuration are optimistic against stock folds. Test-set "
                "predictions are unaffected; for honest cross-validation train nnUNetTrainerDUMM_leakFree.")
        if not all(self.dumm_teachers.cache.current(c, self._image_fingerprint(c)) for c in cases):
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
                  sources: dict, base: PseudoLabelCache | None = None) -> None:
        num_parts, part_id = self._shard()
        generate_pseudo_labels(members, cases, self._load_unlabeled_image, cache, sources,
                               class_location_keys(self.label_manager), base=base,
                               num_parts=num_parts, part_id=part_id, verbose=self.local_rank == 0,
                               log=self.print_to_log_file,
                               case_shape=lambda case: preprocessed_shape(self.unlabeled_folder, case),
                               case_image=self._image_fingerprint)
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
                       "student_weights_sha256": weights_digest(student.window.network),
                       "contents": CacheContents.of_round(self.dumm_config, round_index).to_dict()}
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
            self._run_pass([student], selection, cache, sources, base=self.dumm_teachers.cache)
            self.set_deep_supervision_enabled(self.enable_deep_supervision)
            self.network.train()
        label_maps = self._label_maps(cache, selection)
        if self.local_rank == 0:
            # the teachers' pass covers the whole pool; a round's own pass only its selection
            self._write_diagnostics(cache, self.dumm_ranking if cache is self.dumm_teachers.cache else selection,
                                    round_index, label_maps)
        dataset = LabelMapDataset(str(self.unlabeled_folder), selection, str(cache.folder), label_maps)
        self.dumm_round_stats = selection_statistics(label_maps, cache, selection)
        batch_size = max(1, round(config.unlabeled_batch_ratio * self.batch_size))
        if self.unlabeled_loader is not None:
            self._shutdown_unlabeled_loader()
        self.unlabeled_loader = build_unlabeled_loader(self.dataloader_train, self.label_manager, dataset, batch_size)
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
        return PseudoLabelMaps(config.pixel_uncertainty, config.pixel_weighting, config.pixel_threshold, num_classes,
                               thresholds)

    def _write_diagnostics(self, cache: PseudoLabelCache, cases: list[str], round_index: int,
                           label_maps: PseudoLabelMaps) -> None:
        """Pseudo-label quality against true labels (labelsUnlabeled/), when the dataset has them."""
        summary = write_round_diagnostics(
            cache, cases, self.unlabeled_folder / TRUE_LABELS_SUBFOLDER, label_maps, self.label_manager.ignore_label,
            self.dataset_json["labels"], self._load_unlabeled_image, self.dumm_config.sample_uncertainty.value,
            Path(self.output_folder) / f"dumm_diagnostics_round{round_index + 1}")
        if summary:
            self.print_to_log_file(f"DUMM diagnostics round {round_index + 1}: {summary}")

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
        """nnU-Net's step (autocast on CUDA, grad scaler, clipping at 12, one optimiser step) over a labeled and an
        unlabeled batch in two forward/backward passes: nnU-Net's loss on the labeled batch, lambda(t) x the masked
        pseudo-label loss on the unlabeled one, their gradients added before the step.

        That is the loss and gradient of one pass over both batches, since nnU-Net's instance norm normalises each
        sample on its own (a batch-norm network would see two half batches), at the activation memory of one
        batch: the student fits where the plans' batch fits.
        """
        weight = unlabeled_loss_weight(self.current_epoch, self.num_epochs, self.dumm_config.lambda_max,
                                       self.dumm_config.rampup_fraction)
        unlabeled = next(self.unlabeled_loader)
        self.optimizer.zero_grad(set_to_none=True)
        with self.network.no_sync() if self.is_ddp else nullcontext():  # DDP reduces once, after both passes
            supervised = self._accumulate_gradient(batch, self.loss, 1.0)
        unsupervised = self._accumulate_gradient(unlabeled, self.unlabeled_loss, weight)
        if self.grad_scaler is not None:
            self.grad_scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        target = _as_list(unlabeled["target"])[0]
        return {"loss": (supervised + weight * unsupervised).cpu().numpy(), "sup_loss": supervised.cpu().numpy(),
                "unsup_loss": unsupervised.cpu().numpy(),
                "kept_fraction": (target != self._masked_label).float().mean().numpy()}

    def _accumulate_gradient(self, batch: dict, loss_function, weight: float) -> torch.Tensor:
        """Forward and backward of one batch, ``weight`` x its loss added to the gradients; returns the loss."""
        data = batch["data"].to(self.device, non_blocking=True)
        target = [t.to(self.device, non_blocking=True) for t in _as_list(batch["target"])]
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            output = self.network(data)
            loss = loss_function(output, target if isinstance(batch["target"], list) else target[0])
        scaled = weight * loss
        (self.grad_scaler.scale(scaled) if self.grad_scaler is not None else scaled).backward()
        return loss.detach()

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
            append_record(Path(self.output_folder) / METRICS_FILE, record)

    def on_train_end(self):
        self._shutdown_unlabeled_loader()
        super().on_train_end()
        if self.local_rank == 0:
            for name in ("checkpoint_final.pth", "checkpoint_best.pth"):
                self._name_stock_trainer_for_inference(Path(self.output_folder) / name)

    def _name_stock_trainer_for_inference(self, checkpoint_file: Path) -> None:
        """The student's network is stock nnU-Net's, so its deployable checkpoints name ``nnUNetTrainer`` (the class
        nnU-Net's predictor builds the network with): plain nnU-Net predicts with the folder, or its exported zip,
        without this package. The trainer that made it stays in the checkpoint as ``dumm_trainer_name``; a subclass
        with an architecture of its own keeps its name."""
        if not checkpoint_file.is_file() or \
                type(self).build_network_architecture is not nnUNetTrainer.build_network_architecture:
            return
        checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
        checkpoint.update(trainer_name=nnUNetTrainer.__name__, dumm_trainer_name=self.__class__.__name__)
        temporary = checkpoint_file.with_name(f"{checkpoint_file.name}.partial")
        torch.save(checkpoint, temporary)
        os.replace(temporary, checkpoint_file)


def _as_list(x):
    return x if isinstance(x, (list, tuple)) else [x]
