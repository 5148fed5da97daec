"""Does ``run_quality.py --jobs 2`` pay on the CPU? Trains two stock folds one after the other, then side by side.

Uses a work dir that ``learning_curve.py`` or ``run_quality.py`` has converted and preprocessed; the models go to
``nnUNet_results_jobs<N>`` there (delete those folders to measure again). Prints the wall time of each mode.

Example:
    python benchmarks/jobs_on_cpu.py --work-dir work_dirs/isic_10pct_64px --dataset Dataset941_ISIC_10pct_64px
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/jobs_on_cpu.py` from anywhere

from benchmarks.common import StepLog, data_augmentation_in_process, set_nnunet_paths  # noqa: E402
from benchmarks.rows import Model  # noqa: E402
from benchmarks.run_quality import train_all  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--dataset", required=True, help="the nnU-Net dataset name in the work dir")
    parser.add_argument("--trainer", default="nnUNetTrainerStock_500it")
    args = parser.parse_args()
    work_dir = args.work_dir.resolve()
    set_nnunet_paths(work_dir)
    data_augmentation_in_process("cpu")
    for jobs in (1, 2):
        models = [Model(args.trainer, fold, 0, f"nnUNet_results_jobs{jobs}") for fold in (1, 2)]
        start = time.perf_counter()
        train_all(models, argparse.Namespace(work_dir=work_dir, jobs=jobs, device="cpu"), args.dataset,
                  StepLog(work_dir / f"jobs_on_cpu_{jobs}.json", total=0))
        print(f"--jobs {jobs}: folds 1 and 2 of {args.trainer} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
