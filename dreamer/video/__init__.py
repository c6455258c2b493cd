"""Dreaming an existing video: decoding, optical flow, frame-to-frame coherent dreams, resumable sessions."""
