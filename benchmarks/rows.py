"""What a quality report compares: its rows, the differences it gives intervals for, and the models behind a row.

A row is a trainer arm (stock nnU-Net, the recommended DUMM, the paper's setting, an ablation) on fold 0 or
ensembled over the teacher folds, at the run's budget or twice it, on the students' dataset or its oracle twin.
Since 0.2.0 ``dumm`` is the recommended method (``nnUNetTrainerDUMM``: PUM's mask keeps the 90 % most certain
pixels of each pseudo-label class) and ``dumm_paper`` the published fixed mask; reports written before name them
otherwise (``reports.load_report`` translates them).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

__all__ = [
    "COMPARISONS",
    "PRESETS",
    "ROWS",
    "ROWS_BY_KEY",
    "SEEDED_PRESETS",
    "STOCK",
    "SUMMARY_PAIRS",
    "Model",
    "Row",
    "available_rows",
    "default_arms",
    "models_of",
    "preset_budget",
    "preset_label",
    "row_budget",
    "row_models",
    "stock_results_root",
    "summary_key",
    "trainer_class",
    "trainer_name",
    "training_stages",
]

# the budgets of benchmarks/trainers.py's BUDGETS a run can name, plus "proxy" (the dataset's PROXY_BUDGETS entry,
# or --proxy-budget), "gpuwin" (the GPU window's 5000it) and "full" (nnU-Net's default schedule: trainer names
# without a budget suffix)
PRESETS = ("test", "demo", "cpu", "gpu", "proxy", "gpuwin", "full")
# presets whose seeded rows get seeds 0, 1, 2 by default, and which run every row but the oracle ones by default
SEEDED_PRESETS = ("proxy", "gpuwin")
# stock nnU-Net; its budget presets are nnUNetTrainerStock_<budget>
STOCK = "nnUNetTrainer"


@dataclass(frozen=True)
class Row:
    """One row of the report: a trainer arm, trained on fold 0 (or ensembled over the teacher folds).

    ``budget`` "2x" trains on the preset's doubled budget (the stock row with the student's sample count).
    ``seeded`` rows are trained once per ``--seeds`` value, the others with seed 0 only (unless ``--seed-every-row``):
    the stock baselines, the recommended DUMM and DUMM without the mask: the claims need seeds; the paper's setting
    is the reference the recommended method was chosen against on the dev split, one seed is its measurement.
    ``oracle`` rows train on the oracle twin of the dataset (``datasets.prepare_oracle``): the pool's true labels as
    labels. ``label`` names an ensemble's size as ``{folds}`` (``label_for``): ACDC-3 has three teacher folds.
    """

    key: str
    label: str
    arm: str
    ensemble: bool = False
    budget: str = ""
    seeded: bool = False
    oracle: bool = False

    def label_for(self, teacher_folds: int) -> str:
        """The row's name in a report whose ensembles have ``teacher_folds`` folds."""
        return self.label.format(folds=teacher_folds)


ROWS = (
    Row("stock", "stock nnU-Net fold 0 (labeled only)", STOCK, seeded=True),
    Row("stock_ensemble", "stock nnU-Net {folds}-fold ensemble (the teachers)", STOCK, ensemble=True),
    Row("stock_2x", "stock nnU-Net fold 0, twice the iterations (the student's sample count)", STOCK, budget="2x",
        seeded=True),
    Row("stock_2x_ensemble", "stock nnU-Net {folds}-fold ensemble, twice the iterations (the student ensemble's cost)",
        STOCK, ensemble=True, budget="2x"),
    # the ablations of the recommended method
    Row("pseudo_label", "plain pseudo-labelling (fold-0 teacher)", "nnUNetTrainerPseudoLabel"),
    Row("dumm_nosus", "DUMM without SUS", "nnUNetTrainerDUMM_noSUS"),
    Row("dumm_nopum", "DUMM without PUM", "nnUNetTrainerDUMM_noPUM"),
    Row("dumm", "DUMM (PUM's class-quantile mask + SUS, recommended), fold 0", "nnUNetTrainerDUMM", seeded=True),
    Row("dumm_ensemble", "DUMM {folds}-fold student ensemble", "nnUNetTrainerDUMM", ensemble=True),
    Row("dumm_paper", "DUMM as published (PUM's fixed mask + SUS), fold 0", "nnUNetTrainerDUMM_paper"),
    Row("no_mask", "DUMM with every pseudo-label pixel counted (no mask)", "nnUNetTrainerDUMM_noMask", seeded=True),
    Row("no_mask_ensemble", "DUMM without the mask, {folds}-fold student ensemble", "nnUNetTrainerDUMM_noMask",
        ensemble=True),
    # a measured choice: the teachers' pass without test-time mirroring
    Row("dumm_no_mirroring", "DUMM, the teachers' pass without test-time mirroring",
        "nnUNetTrainerDUMM_noTeacherMirroring"),
    # the supervised upper bound: what true labels for the whole pool would give at the same budget (and at the
    # student's sample count); the headroom any semi-supervised method has above the stock ensemble
    Row("oracle", "supervised upper bound: stock nnU-Net fold 0 with the pool's true labels", STOCK, oracle=True),
    Row("oracle_2x", "supervised upper bound, twice the iterations", STOCK, budget="2x", oracle=True),
)
ROWS_BY_KEY = {row.key: row for row in ROWS}
# (row, reference row): the differences the report and summary.json give intervals for
COMPARISONS = (
    # the recommended method against what stock users deploy, one fold and five, against stock trained on as many
    # samples as the student (is the gain the unlabeled images'?), against the paper's setting and against no mask
    ("dumm", "stock_ensemble"), ("dumm", "stock"), ("dumm", "stock_2x"), ("dumm", "stock_2x_ensemble"),
    ("dumm", "dumm_paper"), ("dumm", "no_mask"), ("dumm", "no_mask_ensemble"),
    ("dumm_ensemble", "stock_ensemble"), ("dumm_ensemble", "stock_2x_ensemble"),
    ("dumm_ensemble", "no_mask_ensemble"),
    # the paper's setting against the stock bar
    ("dumm_paper", "stock_ensemble"), ("dumm_paper", "stock"),
    # what twice the iterations give stock nnU-Net
    ("stock_2x", "stock"), ("stock_2x_ensemble", "stock_ensemble"),
    # the ablations: what each changes against DUMM (no_mask: dumm_vs_no_mask above), and where each stands against
    # the bar
    *((row, reference) for row in ("pseudo_label", "dumm_nosus", "dumm_nopum") for reference in
      ("dumm", "stock_ensemble")),
    ("pseudo_label", "stock"),
    ("no_mask", "stock_ensemble"), ("no_mask", "stock"), ("no_mask", "stock_2x"),
    ("no_mask_ensemble", "stock_ensemble"), ("no_mask_ensemble", "stock_2x_ensemble"),
    # without PUM, DUMM also takes one teacher (fold 0); the five teachers without the mask separate the two
    ("no_mask", "dumm_nopum"),
    # the teachers' mirroring: what the pass without it changes
    ("dumm_no_mirroring", "dumm"), ("dumm_no_mirroring", "stock_ensemble"),
    # the headroom: the supervised upper bound against the bar, and DUMM against it
    ("oracle", "stock_ensemble"), ("oracle_2x", "stock_ensemble"), ("dumm", "oracle"),
)
# the comparisons summary.json keeps, under "<row>_vs_<reference>" (stock fold 0 named "stock_fold0"): those of the
# recommended method, the paper's setting, no mask and longer stock training; the ablations, the mirroring choice and
# the oracle rows stay in their reports
SUMMARY_PAIRS = tuple(pair for pair in COMPARISONS if not {"pseudo_label", "dumm_nosus", "dumm_nopum",
                                                           "dumm_no_mirroring", "oracle", "oracle_2x"} & set(pair))


def summary_key(row: str, reference: str) -> str:
    return f"{row}_vs_{'stock_fold0' if reference == 'stock' else reference}"


def default_arms(preset: str) -> list[str]:
    """The rows a run of ``preset`` reports without ``--arms``: every row but the oracle ones and the mirroring
    choice for the seeded presets; otherwise the single-model rows of stock nnU-Net, the recommended DUMM, the
    paper's setting and the ablations of the pipeline check."""
    if preset in SEEDED_PRESETS:
        return [row.key for row in ROWS if not row.oracle and row.key != "dumm_no_mirroring"]
    return ["stock", "stock_ensemble", "pseudo_label", "dumm_nosus", "dumm_nopum", "dumm", "dumm_paper"]


# ------------------------------------------------------------------------------------------------ models of a row
@dataclass(frozen=True)
class Model:
    """One trained model: a trainer, fold and seed, in a results root of the work dir."""

    trainer: str
    fold: int
    seed: int
    root: str
    plans: str = "nnUNetPlans"
    oracle: bool = False  # trained on the oracle twin of the dataset

    @property
    def teacher_link_needed(self) -> bool:
        return self.root.startswith("nnUNet_results_seed")


def trainer_name(arm: str, budget: str) -> str:
    """The trainer class of an arm on a budget: the budget preset ``<arm>_<budget>`` (stock nnU-Net's
    ``nnUNetTrainerStock_<budget>``), or the arm itself on nnU-Net's schedule (``full``)."""
    if budget == "full":
        return arm
    from nnunet_dumm.trainers.budget import preset_name

    return preset_name(arm, budget)


def trainer_class(name: str) -> type | None:
    """The class of a trainer name of the benchmarks' arms: stock nnU-Net's, a preset of ``benchmarks/trainers.py``
    or a trainer the package ships (its demo presets among them); None if there is none."""
    import nnunet_dumm.trainers as package
    from benchmarks import trainers

    if name == STOCK:
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        return nnUNetTrainer
    return trainers.PRESETS.get(name) or getattr(package, name, None)


def preset_budget(args: argparse.Namespace) -> str:
    """The training budget (``benchmarks.trainers.BUDGETS``) of the run's preset: ``proxy`` is the budget the
    dataset's learning curve chose (or ``--proxy-budget``), ``gpuwin`` the GPU window's; the other presets are
    budgets of their own name."""
    from benchmarks.trainers import PROXY_BUDGETS

    if args.preset == "proxy":
        return args.proxy_budget or PROXY_BUDGETS[args.dataset]
    return {"gpuwin": "5000it"}.get(args.preset, args.preset)


def preset_label(args: argparse.Namespace) -> str:
    """The preset as reports and ``summary.json`` name it: ``proxy`` with another budget than the learning curve's
    or another network than nnU-Net's is ``proxy<budget>`` (+ ``_features<scale>``), so that its report and summary
    entry stand beside the default's."""
    from benchmarks.trainers import PROXY_BUDGETS

    budget = preset_budget(args)
    network = "" if args.plans == "nnUNetPlans" else "_" + args.plans.removeprefix("nnUNetPlans_")
    if args.preset != "proxy" or (budget == PROXY_BUDGETS[args.dataset] and not network):
        return args.preset
    return f"proxy{budget}{network}"


def row_budget(args: argparse.Namespace, row: Row) -> str | None:
    """The budget a row trains on: the preset's, or for a "2x" row the budget of twice its iterations (None if
    the preset has none)."""
    from benchmarks.trainers import BUDGETS

    budget = preset_budget(args)
    if not row.budget:
        return budget
    if budget not in BUDGETS:
        return None
    doubled = [name for name, b in BUDGETS.items() if b.iterations == 2 * BUDGETS[budget].iterations
               and b.iterations_per_epoch == BUDGETS[budget].iterations_per_epoch]
    return doubled[0] if doubled else None


def stock_results_root(seed: int) -> str:
    """Where stock fold 0 of a seed trains (also the learning curve's): seed 0 beside the teachers, other seeds in
    roots of their own, not the students' seed roots, which link the teachers' folder."""
    return "nnUNet_results" if seed == 0 else f"nnUNet_results_stock_seed{seed}"


def row_models(row: Row, args: argparse.Namespace) -> dict[int, list[Model]]:
    """The models behind a row, per seed (an ensemble row: all teacher folds of seed 0)."""
    trainer = trainer_name(row.arm, row_budget(args, row))
    if row.ensemble:
        return {0: [Model(trainer, fold, 0, "nnUNet_results", args.plans, row.oracle)
                    for fold in range(args.teacher_folds)]}
    seeds = args.seeds if row.seeded or args.seed_every_row else [0]
    out = {}
    for seed in seeds:
        root = stock_results_root(seed) if row.arm == STOCK else \
            "nnUNet_results" if seed == 0 else f"nnUNet_results_seed{seed}"
        out[seed] = [Model(trainer, 0, seed, root, args.plans, row.oracle)]
    return out


def models_of(rows: list[Row], args: argparse.Namespace) -> list[Model]:
    """The models behind ``rows``, each once, in the rows' order."""
    return list(dict.fromkeys(m for row in rows for per_seed in row_models(row, args).values() for m in per_seed))


def training_stages(rows: list[Row], args: argparse.Namespace) -> tuple[list[Model], list[Model]]:
    """The models to train, in the order they depend on each other: the stock models (the teachers among them),
    then the students of the stock teachers. The oracle rows' models (another dataset, no teachers) are not among
    them."""
    teachers = [Model(trainer_name(STOCK, preset_budget(args)), fold, 0, "nnUNet_results", args.plans)
                for fold in range(args.teacher_folds)]
    rows = [row for row in rows if not row.oracle]
    stock_models = list(dict.fromkeys([*teachers, *models_of([row for row in rows if row.arm == STOCK], args)]))
    students = [m for m in models_of([row for row in rows if row.arm != STOCK], args) if m not in stock_models]
    return stock_models, students


def available_rows(args: argparse.Namespace) -> list[Row]:
    """The selected rows that this preset can train (a doubled budget exists only for some presets)."""
    return [row for row in ROWS if row.key in args.arms and row_budget(args, row) is not None]
