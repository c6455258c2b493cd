"""The gradient backend both loops share: a network prepared once (precision, BatchNorm folding,
channels_last, CUDA graphs, tiling, out-of-memory retry) that turns images into gradients."""
