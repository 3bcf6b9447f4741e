"""Q/R/A records, the one video-path rule (``videos``) and their exports (LLaVA-NeXT, ChatML, TRL, Video-R1, HF datasets)."""

from __future__ import annotations

from stepkit.data.record import QRARecord, RationaleStep, iter_records, load_records

__all__ = ["QRARecord", "RationaleStep", "iter_records", "load_records"]
