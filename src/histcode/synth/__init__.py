"""Synthetic cohort generator: real GDC/OpenSlide formats with planted, documented ground truth.

``generate(SynthConfig.tiny(), out_dir)`` writes a test cohort in seconds; ``histcode.io.truth``
reads the ground truth (evaluation only). See docs/synthetic_cohort.md.
"""

from histcode.synth.config import SynthConfig
from histcode.synth.generate import generate

__all__ = ["SynthConfig", "generate"]
