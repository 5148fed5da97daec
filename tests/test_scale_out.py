"""More than one process on one dataset: two folds started together, and nnU-Net's DDP path with the gloo backend.

Both start without the teachers' pseudo-label cache and the preprocessed unlabeled images (moved aside for the test
and compared with them afterwards), so that the shared work really happens and must be split, not repeated.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_SPEC, user_env

DATASET = "Dataset950_DUMMDemo"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture()
def without_shared_work(pipeline, tmp_path):
    """The teachers' cache and the preprocessed unlabeled cases moved aside; yields them, puts them back after."""
    from nnunet_dumm.unlabeled import unlabeled_preprocessed_folder

    cache = pipeline["teacher_cache"]
    unlabeled = unlabeled_preprocessed_folder(DATASET, "nnUNetPlans_2d")
    aside = {"cache": tmp_path / "cache", "unlabeled": tmp_path / "unlabeled"}
    shutil.move(cache, aside["cache"])
    shutil.move(unlabeled, aside["unlabeled"])
    try:
        yield {"cache": cache, "unlabeled": unlabeled, "aside": aside}
    finally:
        for name, folder in (("cache", cache), ("unlabeled", unlabeled)):
            shutil.rmtree(folder, ignore_errors=True)
            shutil.move(aside[name], folder)


def test_two_folds_started_together_split_the_shared_work(pipeline, without_shared_work):
    bin_dir = Path(sys.executable).parent
    jobs = [subprocess.Popen([bin_dir / "nnUNetv2_train", "950", "2d", str(fold), "-tr", "nnUNetTrainerDUMM_noSUS_test",
                              "-device", "cpu"], env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for fold in (0, 1)]
    outputs = [job.communicate(timeout=900) for job in jobs]
    for job, (stdout, stderr) in zip(jobs, outputs):
        assert job.returncode == 0, stderr[-3000:]
    student = pipeline["student"].parent / "nnUNetTrainerDUMM_noSUS_test__nnUNetPlans__2d"
    # every unlabeled case was preprocessed once and labelled once, by one of the two processes
    here = [int(m) for stdout, _ in outputs for m in re.findall(r"again: (\d+) preprocessed here", stdout)]
    assert len(here) == 2 and sum(here) == TINY_SPEC.num_unlabeled
    labelled = [int(m) for fold in (0, 1) for m in re.findall(
        r"pseudo-labels: (\d+) cases in", next((student / f"fold_{fold}").glob("training_log_*.txt")).read_text())]
    assert sum(labelled) == TINY_SPEC.num_unlabeled
    # and the shared results are the same, byte for byte, as one process alone made them
    assert _files(without_shared_work["unlabeled"]) == _files(without_shared_work["aside"]["unlabeled"])
    assert _files(without_shared_work["cache"]) == _files(without_shared_work["aside"]["cache"])
    for fold in (0, 1):
        assert (student / f"fold_{fold}" / "checkpoint_final.pth").is_file()


def _ddp_rank(rank: int, world_size: int, port: int, environment: dict, report: str, threads: int) -> None:
    """One DDP rank of ``nnUNetv2_train -num_gpus 2`` on the CPU: nnU-Net's trainer under a gloo process group.

    nnU-Net 2.8.1 hard-codes CUDA for DDP (``run_training.py``: ``init_process_group("nccl")``,
    ``torch.cuda.set_device``; ``nnUNetTrainer.__init__`` switches DDP ranks to ``cuda:<rank>``; ``DDP(...,
    device_ids=[rank])``). This process replaces exactly those lines, in this process only.
    """
    os.environ.update(environment)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    # the thread count of the single-process pass it is compared with: CPU convolutions differ in the last bits
    # between thread counts
    torch.set_num_threads(threads)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module
    from nnunetv2.run.run_training import get_trainer_from_args

    ddp = trainer_module.DDP
    trainer_module.DDP = lambda network, device_ids=None, **kwargs: ddp(network, **kwargs)  # CPU: no device ids
    import nnunet_dumm.unlabeled as unlabeled

    preprocess_case, preprocessed_here = unlabeled._run_one, []  # the unlabeled cases this rank preprocessed
    unlabeled._run_one = lambda job: preprocessed_here.append(preprocess_case(job)) or preprocessed_here[-1]
    trainer = get_trainer_from_args("950", "2d", 4, "nnUNetTrainerDUMM_test", "nnUNetPlans",
                                    device=torch.device("cpu"))
    trainer.device, trainer.grad_scaler = torch.device("cpu"), None  # undo the switch to cuda:<rank>
    trainer.run_training()
    trainer.perform_actual_validation(False)  # as nnU-Net's run_training does after training, on every rank
    Path(report, f"rank{rank}.json").write_text(json.dumps({
        "is_ddp": trainer.is_ddp, "labeled_batch": trainer.batch_size, "preprocessed_here": sum(preprocessed_here),
        "unlabeled_batch": trainer.unlabeled_loader.data_loader.batch_size if trainer.unlabeled_loader else None}))
    torch.distributed.destroy_process_group()


def test_ddp_with_gloo_splits_the_preprocessing_the_pass_and_the_batches(pipeline, without_shared_work, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nnU-Net's two background workers, one per rank: each rank preprocesses in its own process
    environment = {**{k: v for k, v in user_env().items() if k.startswith("nnUNet")}, "nnUNet_def_n_proc": "2"}
    torch.multiprocessing.spawn(_ddp_rank, args=(2, port, environment, str(tmp_path), torch.get_num_threads()),
                                nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["is_ddp"] for r in ranks)
    # both ranks preprocessed the unlabeled images, each case once, the same bytes as one process alone
    assert all(r["preprocessed_here"] > 0 for r in ranks)
    assert sum(r["preprocessed_here"] for r in ranks) == TINY_SPEC.num_unlabeled
    assert _files(without_shared_work["unlabeled"]) == _files(without_shared_work["aside"]["unlabeled"])
    plans = json.loads((pipeline["preprocessed"] / "nnUNetPlans.json").read_text())
    # each rank draws its share of nnU-Net's global batch, labeled and unlabeled alike (unlabeled_batch_ratio 1)
    assert sum(r["labeled_batch"] for r in ranks) == plans["configurations"]["2d"]["batch_size"]
    assert [r["unlabeled_batch"] for r in ranks] == [r["labeled_batch"] for r in ranks]
    fold = pipeline["student"] / "fold_4"
    assert (fold / "checkpoint_final.pth").is_file()
    assert (fold / "validation" / "summary.json").is_file()  # nnU-Net's DDP validation, ranks splitting the cases
    records = [json.loads(line) for line in (fold / "dumm_metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]  # rank 0 writes, once per epoch
    # the ranks split the teachers' pass into one cache: complete and equal to the single-process pass
    assert _files(without_shared_work["cache"]) == _files(without_shared_work["aside"]["cache"])
    (round2,) = (fold / "dumm_pseudo_labels").glob("round2_*")
    assert len(list(round2.glob("*.pkl"))) == TINY_SPEC.num_unlabeled


def test_five_dumm_folds_work_with_nnunets_cross_validation_commands(pipeline, tmp_path):
    """nnUNetv2_find_best_configuration over the five student folds (against the stock trainer), the five-fold
    ensemble and fold 'all' with nnUNetv2_predict, and nnUNetv2_ensemble of both, all stock commands."""
    from nnunetv2.run.run_training import run_training

    from tests.conftest import run_console_script

    trainer = "nnUNetTrainerDUMM_test"
    student = pipeline["student"]
    # in a whole-suite run folds 0-4 exist already (the pipeline, its resume test, the interruption tests, DDP)
    for fold in (0, 1, 2, 3, 4, "all"):
        if not (student / f"fold_{fold}" / "validation" / "summary.json").is_file():
            run_training("950", "2d", fold, trainer, device=torch.device("cpu"))

    def check(result):
        assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
        return result

    best = check(run_console_script(["nnUNetv2_find_best_configuration", "950", "-c", "2d", "-tr", trainer, "-np",
                                     "1"]))
    assert trainer in best.stdout
    assert (pipeline["student"].parent / "inference_instructions.txt").is_file()
    raw = pipeline["raw"]
    for folds, output in ((["0", "1", "2", "3", "4"], "five_folds"), (["all"], "fold_all")):
        check(run_console_script(["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(tmp_path / output),
                                  "-d", "950", "-c", "2d", "-tr", trainer, "-f", *folds, "-device", "cpu",
                                  "--save_probabilities", "-npp", "1", "-nps", "1"]))
        assert len(list((tmp_path / output).glob("*.nii.gz"))) == TINY_SPEC.num_test
    check(run_console_script(["nnUNetv2_ensemble", "-i", str(tmp_path / "five_folds"), str(tmp_path / "fold_all"),
                              "-o", str(tmp_path / "ensemble"), "-np", "1"]))
    assert len(list((tmp_path / "ensemble").glob("*.nii.gz"))) == TINY_SPEC.num_test
