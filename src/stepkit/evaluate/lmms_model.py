"""An lmms-eval model (``--model stepkit``) that runs any stepkit backend on lmms-eval tasks.

lmms-eval's own video wrappers decode with decord, qwen-vl-utils or torchcodec (through the
transformers processor); this one decodes with PyAV, as every stage of stepkit does, so a task
exported by ``stepkit eval export-lmms`` (or any lmms-eval video task) runs where only the
``train`` extra is installed. ``pretrained`` is what ``--model`` takes elsewhere in stepkit: a
checkpoint folder, a hub id, or ``tiny:FAMILY``::

    python -m lmms_eval --model stepkit --model_args pretrained=CKPT,frames=8 \\
        --include_path TASK_DIR --tasks stepkit_qa --output_path results/

It is registered with lmms-eval through the ``lmms_eval.models`` entry point (pyproject.toml);
``StepkitLMM`` can also be handed to ``lmms_eval.evaluator.simple_evaluate(model=...)`` directly.
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from stepkit.errors import VideoError


class StepkitLMM(lmms):
    """lmms-eval ``simple`` model over :func:`stepkit.models.registry.open_model`: each request's
    visuals (video paths, PIL images) become one :class:`~stepkit.models.base.Prompt`; ``frames``
    frames are sampled uniformly over each video (over the document's ``window`` when it has one)."""

    def __init__(self, pretrained: str = "tiny:qwen2.5-vl", frames: int | str = 8, device: str = "auto",
                 batch_size: int | str = 1, backend: Any = None, **kwargs: Any) -> None:
        super().__init__()
        from stepkit.models.registry import open_model

        self.frames = int(frames)
        self.batch_size = int(batch_size)
        if backend is not None:  # a VideoLLM object, from Python
            self.model = backend
        else:
            opts = {"device": device} if not str(pretrained).startswith("tiny:") else {}
            self.model = open_model(str(pretrained), **opts, **kwargs)

    def _prompt(self, context: str, visuals: list[Any], window: Any = None):
        import numpy as np

        from stepkit.models.base import Prompt
        from stepkit.video import sample_frames

        video, fps, images = None, None, []
        for v in visuals:
            if isinstance(v, str):
                try:
                    t0, t1 = (float(window[0]), float(window[1])) if window else (None, None)
                    s = sample_frames(v, n=self.frames, t0=t0, t1=t1)
                except VideoError:
                    raise
                except Exception as exc:  # a decoder error names the file, not a traceback
                    raise VideoError(f"{v}: cannot read video ({exc})") from None
                video = list(s.frames)
                span = (s.times[-1] - s.times[0]) if len(s.times) > 1 else 0.0
                fps = (len(s.times) - 1) / span if span > 0 else 1.0
            else:  # a PIL image
                images.append(np.asarray(v.convert("RGB")))
        return Prompt(text=context, images=images, video=video, video_fps=fps)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy (or sampled) answers, one per request, in request order."""
        from stepkit.models.base import SamplingParams

        out: list[str] = []
        for req in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            doc = self.task_dict[task][split][doc_id]
            visuals = doc_to_visual(doc) if doc_to_visual is not None else []
            visuals = visuals if isinstance(visuals, list) else [visuals]
            params = SamplingParams(max_new_tokens=int(gen_kwargs.get("max_new_tokens", 32)),
                                    temperature=float(gen_kwargs.get("temperature") or 0.0),
                                    top_p=float(gen_kwargs.get("top_p") or 1.0))
            window = doc.get("window") if isinstance(doc, dict) else None  # stepkit tasks carry the question's window
            [[text]] = self.model.generate([self._prompt(context, visuals, window)], params)
            for stop in gen_kwargs.get("until") or []:
                if isinstance(stop, str) and stop and stop in text:
                    text = text.split(stop)[0]
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Summed log-probability of each continuation (``is_greedy`` is not computed: False)."""
        from stepkit.models.base import Prompt

        out = []
        for req in requests:
            context, continuation = req.args[0], req.args[1]
            [lp] = self.model.loglikelihood(Prompt(text=context), [continuation])
            out.append((float(lp), False))
        return out

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        """Single-round answers (stepkit tasks have one round)."""
        return self.generate_until(requests)


def manifest():
    """The ``lmms_eval.models`` entry point: lmms-eval's manifest for ``--model stepkit``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="stepkit", simple_class_path="stepkit.evaluate.lmms_model.StepkitLMM")
