"""How a pruned architecture is trained: one module per regime, each a registered plug-in (``regimes.base``).
Adding a regime is its own module plus one import line below; ``prunebench list`` shows them."""

from prunebench.regimes import finetune, scratch_e, scratch_b  # noqa: F401  (registration)
from prunebench.regimes import lottery  # noqa: F401  (registration)
from prunebench.regimes import scale_family  # noqa: F401  (registration)
from prunebench.regimes.base import REGIMES, Entry, Regime, Start, VariantPlan, register_regime

__all__ = ["REGIMES", "Entry", "Regime", "Start", "VariantPlan", "register_regime"]
