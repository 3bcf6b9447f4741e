"""The program language over STSGs and graph-guided multi-step Q/R/A generation.

``ops`` holds the typed operators and the executor, ``sampler`` the reasoning-path sampler,
``render`` the rationale renderer, ``generate`` the streaming generator, ``verify`` re-execution
and ``refine`` the optional LLM rewording hook.
"""

from __future__ import annotations
