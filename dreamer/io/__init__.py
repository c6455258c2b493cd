"""Files in and out: images, videos, metadata and atomic writes. The only users of Pillow and PyAV."""
