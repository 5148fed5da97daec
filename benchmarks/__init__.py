"""Benchmark scripts of nnunet_dumm (quality and cost); see benchmarks/README.md. Not part of the installed package."""
