"""The audio track of a dreamed video: copied from the input into the MP4 output.

`add_audio` takes a video-only MP4 (what `dreamer.io.video.encode` writes) and the input
video, and writes a new MP4 with the same video packets plus the input's audio packets,
**copied unchanged** (no decoding, no re-encoding), re-timed only when a part of the video
was dreamed. An audio codec that MP4 cannot hold (e.g. Vorbis from a WebM) is re-encoded
to AAC instead, and the result says so. The file is written atomically.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from dreamer.errors import EncoderError, ImageError

from .atomic import atomic_path

__all__ = ["add_audio", "audio_packets"]


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise EncoderError("copying audio needs PyAV: pip install av") from exc
    return av


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _in_span(packet: Any, begin: float, end: float | None) -> bool:
    """Whether a packet's start time falls in [begin, end) (seconds, container time)."""
    if packet.pts is None or packet.time_base is None:
        return end is None and begin <= 0
    t = float(packet.pts * packet.time_base)
    # the first packet of a stream often starts a little before zero (encoder priming)
    lo_ok = t >= begin - 1e-6 or (begin <= 0 and t < 0)
    return lo_ok and (end is None or t < end - 1e-6)


def audio_packets(source: str | os.PathLike, index: int, begin: float = 0.0, end: float | None = None) -> list[bytes]:
    """The bytes of each audio packet of stream `index` in `source` starting in [begin, end)
    seconds (for tests and checks: two files with the same list carry the same audio)."""
    av = _av()
    out = []
    with av.open(str(source)) as container:
        stream = container.streams[index]
        for packet in container.demux(stream):
            if packet.size and _in_span(packet, begin, end):
                out.append(bytes(packet))
    return out


def add_audio(
    video: str | os.PathLike, source: str | os.PathLike, output: str | os.PathLike, *,
    audio_index: int, begin: float = 0.0, end: float | None = None,
) -> str:
    """Write `output` (MP4): the video stream of `video` plus the audio stream `audio_index` of
    `source` from `begin` to `end` seconds (container time of `source`; the audio that starts
    at `begin` plays at the output's time 0). Returns "copied" or "re-encoded (aac)".

    `video` is not changed; `output` appears only when complete (temporary file, then rename).
    """
    av = _av()
    video, source, output = Path(video), Path(source), Path(output)
    try:
        with atomic_path(output) as tmp:  # OSErrors become OutputErrors naming `output`
            try:
                how = _mux(av, video, source, tmp, audio_index, begin, end, transcode=False)
            except av.FFmpegError:
                _unlink(tmp)
                how = _mux(av, video, source, tmp, audio_index, begin, end, transcode=True)
    except av.FFmpegError as exc:
        raise EncoderError(f"cannot add the audio of {source} to {output}: {_one_line(exc)}") from exc
    return how


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _mux(av: Any, video: Path, source: Path, tmp: Path, audio_index: int, begin: float, end: float | None,
         *, transcode: bool) -> str:
    with av.open(str(video)) as vin, av.open(str(source)) as ain, av.open(str(tmp), "w", format="mp4") as out:
        v_in = vin.streams.video[0]
        try:
            a_in = ain.streams[audio_index]
        except IndexError:
            raise ImageError(f"{source} has no stream {audio_index}") from None
        v_out = out.add_stream_from_template(v_in)
        if not transcode and a_in.codec_context.name not in out.supported_codecs:
            transcode = True
        if transcode:
            a_out = out.add_stream("aac", rate=a_in.codec_context.sample_rate or 48000)
            a_out.layout = _layout(a_in.codec_context)
            audio = _transcoded(av, ain, a_in, a_out, begin, end)
            how = "re-encoded (aac)"
        else:
            a_out = out.add_stream_from_template(a_in)
            audio = _copied(ain, a_in, a_out, begin, end)
            how = "copied"
        video_packets = _copied(vin, v_in, v_out, 0.0, None)
        for _, _, packet in heapq.merge(video_packets, audio, key=lambda item: (item[0], item[1])):
            out.mux(packet)
    return how


def _layout(context: Any) -> str:
    """A named channel layout for the AAC encoder ("1 channels" from an AVI is not one)."""
    channels = int(context.channels or 2)
    name = context.layout.name if context.layout is not None else ""
    if name and "channels" not in name:
        return name
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}.get(channels, "stereo")


def _copied(container: Any, stream_in: Any, stream_out: Any, begin: float, end: float | None) -> Iterator[tuple]:
    """(time, order, packet) for the packets of `stream_in` starting in [begin, end), shifted by
    -begin and addressed to `stream_out`, in file order."""
    tb = stream_in.time_base
    shift = round(Fraction(begin).limit_denominator(10**9) / tb) if begin else 0
    order = 0
    for packet in container.demux(stream_in):
        if packet.size == 0 or not _in_span(packet, begin, end):
            continue
        if shift:
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        t = float(packet.dts * tb) if packet.dts is not None else float("-inf")
        packet.stream = stream_out
        order += 1
        yield (t, order, packet)


def _transcoded(av: Any, container: Any, stream_in: Any, stream_out: Any, begin: float, end: float | None) -> Iterator[tuple]:
    """(time, order, packet): the audio of [begin, end) decoded and encoded again as AAC."""
    rate = stream_out.codec_context.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=stream_out.layout.name, rate=rate)
    samples = 0
    order = 0

    def encoded(chunks: Any) -> Iterator[tuple]:
        nonlocal samples, order
        for chunk in chunks:
            chunk.pts = samples
            chunk.time_base = Fraction(1, rate)
            samples += chunk.samples
            for out_packet in stream_out.encode(chunk):
                order += 1
                dts = out_packet.dts if out_packet.dts is not None else 0
                yield (float(dts * out_packet.time_base), order, out_packet)

    for packet in container.demux(stream_in):
        if packet.size == 0 or not _in_span(packet, begin, end):
            continue
        for frame in packet.decode():
            yield from encoded(resampler.resample(frame))
    yield from encoded(resampler.resample(None))
    for out_packet in stream_out.encode(None):  # the encoder's delayed packets
        order += 1
        dts = out_packet.dts if out_packet.dts is not None else 0
        yield (float(dts * out_packet.time_base), order, out_packet)
