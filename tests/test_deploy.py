"""A student deploys like any nnU-Net model: exported with nnU-Net's own zip and predicted by plain nnU-Net in a
process where this package cannot be imported (a hospital's inference container has nnunetv2 alone)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from tests.conftest import TINY_SPEC, run_console_script

# imports of nnunet_dumm fail in the predicting process, and nnU-Net is not told where our trainers are
WITHOUT_THE_PACKAGE = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "nnunet_dumm" or name.startswith("nnunet_dumm."):
            raise ModuleNotFoundError(f"No module named {name!r} (not installed in this environment)")

sys.meta_path.insert(0, Refuse())
from nnunetv2.inference.predict_from_raw_data import predict_entry_point_modelfolder

sys.argv = ["nnUNetv2_predict_from_modelfolder", *sys.argv[1:]]
predict_entry_point_modelfolder()
assert not any(m == "nnunet_dumm" or m.startswith("nnunet_dumm.") for m in sys.modules)
"""


def test_an_exported_student_predicts_with_plain_nnunet(pipeline, tmp_path):
    archive = tmp_path / "student.zip"
    exported = run_console_script(["nnUNetv2_export_model_to_zip", "-d", "950", "-c", "2d", "-tr",
                                   pipeline["student"].name.split("__")[0], "-f", "0", "-o", str(archive)])
    assert exported.returncode == 0, exported.stderr[-3000:]
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "installed")
    (model_folder,) = (tmp_path / "installed").glob("Dataset950_*/*__nnUNetPlans__2d")

    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    output = tmp_path / "predictions"
    result = subprocess.run([sys.executable, "-c", WITHOUT_THE_PACKAGE, "-i", str(pipeline["raw"] / "imagesTs"),
                             "-o", str(output), "-m", str(model_folder), "-f", "0", "-device", "cpu", "-npp", "1",
                             "-nps", "1"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(output.glob("*.nii.gz"))) == TINY_SPEC.num_test
