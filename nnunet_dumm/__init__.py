"""nnunet_dumm: semi-supervised nnU-Net v2 with dual uncertainty-guided multi-model pseudo-labels (DUMM)."""

__version__ = "0.1.0"
