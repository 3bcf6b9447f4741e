"""Q/R/A records and their exports (LLaVA conversations, ChatML messages, HF datasets)."""

from __future__ import annotations

from stepkit.data.record import QRARecord, RationaleStep, iter_records, load_records

__all__ = ["QRARecord", "RationaleStep", "iter_records", "load_records"]
