"""The two optimisation loops, siblings that never import each other.

- `deepdream`: the classic 2015 recipe (octave pyramid, jitter, gradient steps normalised by mean |g|);
- `render`: feature visualisation (an image held in a parameterisation, optimised with Adam through
  random transforms).

Both are pure: tensors in, tensors out, progress through a callback; they never print or touch files.
"""
