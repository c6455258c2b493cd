"""Zoom videos as a library: the feedback loop (zoom, rotate, shift, dream), jobs files, frame stores."""
