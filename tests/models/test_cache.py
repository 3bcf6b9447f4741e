"""The SQLite response cache: hits skip the real backend, interrupted runs resume, processes share it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from stepkit.models import Prompt, SamplingParams, get_backend
from stepkit.models.cache import CachedBackend, ResponseCache


class Counting:
    """Delegates to a real backend and counts what reaches it."""

    def __init__(self, inner, fail_after_calls: int | None = None):
        self.inner = inner
        self.model_id = inner.model_id
        self.prompts_seen = 0
        self.continuations_seen = 0
        self.calls = 0
        self.fail_after_calls = fail_after_calls

    def generate(self, prompts, params):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        self.prompts_seen += len(prompts)
        return self.inner.generate(prompts, params)

    def loglikelihood(self, prompt, continuations):
        self.calls += 1
        self.continuations_seen += len(continuations)
        return self.inner.loglikelihood(prompt, continuations)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return get_backend("hf", model=str(tiny_dir("qwen2.5-vl")), batch_size=4)


def _prompts(frames, k=5):
    return [Prompt(f"What is object number {i} doing?", video=frames, video_fps=2.0) for i in range(k)]


def test_hits_skip_the_inner_backend(tiny, frames, tmp_path):
    params = SamplingParams(n=2, temperature=0.9, max_new_tokens=4, seed=3)
    first = Counting(tiny)
    a = CachedBackend(first, tmp_path / "c.sqlite").generate(_prompts(frames), params)
    assert first.prompts_seen == 5
    second = Counting(tiny)  # a fresh process would build a new wrapper over the same file
    cached = CachedBackend(second, tmp_path / "c.sqlite")
    assert cached.generate(_prompts(frames), params) == a
    assert second.calls == 0 and cached.hits == 5 and cached.misses == 0
    # Greedy answers ignore the seed; a new seed at temperature > 0 or new pixels is a new question.
    cached.generate(_prompts(frames, 1), SamplingParams(max_new_tokens=4, seed=1))
    cached.generate(_prompts(frames, 1), SamplingParams(max_new_tokens=4, seed=2))
    assert second.prompts_seen == 1
    cached.generate(_prompts(frames, 1), SamplingParams(n=2, temperature=0.9, max_new_tokens=4, seed=4))
    assert second.prompts_seen == 2
    moved = [np.roll(f, 1, axis=1) for f in frames]
    cached.generate([Prompt("What is object number 0 doing?", video=moved, video_fps=2.0)], params)
    assert second.prompts_seen == 3
    # Duplicates inside one call reach the backend once.
    dup = [Prompt("same question")] * 3
    out = cached.generate(dup, SamplingParams(max_new_tokens=3))
    assert second.prompts_seen == 4 and out[0] == out[1] == out[2]


def test_loglikelihood_is_cached(tiny, frames, tmp_path):
    inner = Counting(tiny)
    cached = CachedBackend(inner, tmp_path / "c.sqlite")
    p = _prompts(frames, 1)[0]
    first = cached.loglikelihood(p, ["the cup", "the towel"])
    assert cached.loglikelihood(p, ["the towel", "the cup", "a book"])[:2] == [first[1], first[0]]
    assert inner.continuations_seen == 3


def test_an_interrupted_run_resumes(tiny, frames, tmp_path):
    params = SamplingParams(max_new_tokens=4)
    dying = Counting(tiny, fail_after_calls=2)
    with pytest.raises(KeyboardInterrupt):
        CachedBackend(dying, tmp_path / "c.sqlite", chunk_size=2).generate(_prompts(frames, 7), params)
    assert dying.prompts_seen == 4  # two chunks of two were committed before the kill
    rerun = Counting(tiny)
    out = CachedBackend(rerun, tmp_path / "c.sqlite", chunk_size=2).generate(_prompts(frames, 7), params)
    assert rerun.prompts_seen == 3
    assert out == tiny.generate(_prompts(frames, 7), params)


def test_concurrent_processes_share_one_file(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent("""
        import sys
        from stepkit.models import Prompt, SamplingParams
        from stepkit.models.cache import CachedBackend

        class Echo:
            model_id = "echo"
            def generate(self, prompts, params):
                return [[p.text.upper()] * params.n for p in prompts]
            def loglikelihood(self, prompt, continuations):
                return [-float(len(c)) for c in continuations]

        worker = int(sys.argv[2])
        cached = CachedBackend(Echo(), sys.argv[1], chunk_size=1)
        prompts = [Prompt(f"q{i}") for i in range(worker * 50, worker * 50 + 150)]
        out = cached.generate(prompts, SamplingParams(n=2))
        assert out == [[p.text.upper()] * 2 for p in prompts]
    """))
    db = tmp_path / "shared.sqlite"
    procs = [subprocess.Popen([sys.executable, str(script), str(db), str(w)], stderr=subprocess.PIPE)
             for w in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    cache = ResponseCache(db)
    assert len(cache) == 250  # prompts q0..q249, each stored once however many writers raced

    class Unreachable:
        model_id = "echo"

        def generate(self, prompts, params):
            raise AssertionError("everything should come from the cache")

    reader = CachedBackend(Unreachable(), cache)
    assert reader.generate([Prompt("q7"), Prompt("q249")], SamplingParams(n=2)) == [["Q7", "Q7"], ["Q249", "Q249"]]


def test_cache_through_the_registry(tmp_path, tiny_dir):
    b = get_backend("hf", model=str(tiny_dir("qwen2-vl")), cache=str(tmp_path / "r.sqlite"))
    assert isinstance(b, CachedBackend) and b.model_id.startswith("hf:qwen2-vl@")
    b.generate([Prompt("hello")], SamplingParams(max_new_tokens=2))
    assert b.describe()["cache_misses"] == 1
