"""The gradient backend both loops share: `PreparedNetwork`, a network prepared once (precision,
BatchNorm folding, channels_last, CUDA graphs, tiling, out-of-memory retry) that turns images
into gradients. The caller creates and holds it; nothing here keeps state between objects.

Modules, lowest first: `precision` (policy, out-of-memory recognition), `folding` (BatchNorm
into convolutions), `forward` (the exact and the fast forward pass), `graphs` (CUDA graphs),
`tiling` (tiles for tileable objectives), `prepared` (the object that uses them all).
"""

from .precision import resolve_precision
from .prepared import GradientPair, PreparedNetwork, prepare

__all__ = ["PreparedNetwork", "prepare", "resolve_precision", "GradientPair"]
