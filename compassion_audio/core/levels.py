"""The fixed levels the stages agree on: the voice's loudness and RMS, and the bell's peak."""
from __future__ import annotations

CLIP_LUFS = -23.0
"""BS.1770 integrated loudness (K-weighted, gated) of every processed clip.

Fixed in advance, so the mix knows the voice's loudness before any clip is
synthesised. A clip shorter than one 400 ms gating block is measured as if
followed by silence up to 400 ms. (Only a clip far peakier than speech - a
lone click - can fall short: the -3 dBFS ceiling then keeps it quieter.)"""

SPEECH_RMS_DB = -22.7
"""Typical active-speech RMS (active_rms_db) of a clip at CLIP_LUFS: the median over 80
sentences of the bundled exercises spoken by espeak-ng (1-13 s; all within -23.6 to
-22.2, one-word clips ~1 dB lower). The mix sets the breathing tones relative to it."""

BELL_PEAK_DB = -12.0
"""Bell peak before mastering: soft, well under the voice's peaks."""
