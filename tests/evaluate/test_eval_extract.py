"""Answer extraction on realistic (and malformed) Video-LLM outputs."""

from __future__ import annotations

import pytest

from stepkit.evaluate.extract import extract_choice, extract_open, normalize_answer, open_match

STAR = ["The refrigerator.", "The door.", "The box.", "The closet/cabinet."]
NEXT = ["roll the handle", "tap their feet", "strum the string", "hit with sticks", "pat with hand"]
ACT = ["Took the cup.", "Put down the towel.", "Opened the door.", "Sat on the sofa."]
COLOR = ["red cup", "cup", "blue box", "green ball"]

# (output, options, expected index or None)
CASES = [
    ("B", STAR, 1),
    ("(C)", STAR, 2),
    ("C.", STAR, 2),
    ("d", STAR, 3),
    ("Answer: b", STAR, 1),
    ("Answer: (D) The closet/cabinet.", STAR, 3),
    ("The answer is (A).", STAR, 0),
    ("The answer is A because the person opened the fridge.", STAR, 0),
    ("The correct option is C.", STAR, 2),
    ("**Answer:** B", STAR, 1),
    ("(B) The door.", STAR, 1),
    ("B) the door", STAR, 1),
    ("[C]", STAR, 2),
    ("Best option: (A)", STAR, 0),
    ("The person closed the door.", STAR, 1),
    ("the box", STAR, 2),
    ("I think it is the closet/cabinet", STAR, 3),
    ("A person walks in and opens the box.", STAR, 2),
    ("Not A. The answer is D.", STAR, 3),
    ("assistant: C<|im_end|>", STAR, 2),
    ("<|im_start|>assistant\nB.<|im_end|>", STAR, 1),
    ("B. The door</s>", STAR, 1),
    ("Option 'E' strum the string", NEXT, 4),
    ("E", NEXT, 4),
    ("They strum the string.", NEXT, 2),
    ("The answer is: hit with sticks.", NEXT, 3),
    ("Answer: pat with hand", NEXT, 4),
    ("The man is tapping... The answer is tap their feet", NEXT, 1),
    ("C. Opened the door.", ACT, 2),
    ("Put down the towel.", ACT, 1),
    ("The person sat on the sofa after opening the door.", ACT, 3),  # "opening" is not "opened"
    ("Either they opened the door or they sat on the sofa.", ACT, None),  # two options, no cue
    ("(A) or (B)", STAR, None),
    ("", STAR, None),
    ("   ", STAR, None),
    ("nepillow�vacuum satb\"'�cel4567vacuum{\"vacuum", STAR, None),
    ("I'm not sure.", STAR, None),
    ("The answer is F.", STAR, None),  # letter out of range
    ("a", STAR, 0),
    ("a cup", STAR, None),
    ("It was the red cup.", COLOR, 0),  # "cup" inside "red cup" is not its own hit
    ("the cup", COLOR, 1),
    ("Answer: the blue box. The green ball was not moved.", COLOR, 2),
    ("ANSWER: C", STAR, 2),
    ("{\"answer\": \"B\"}", STAR, 1),
    ("I choose B", STAR, 1),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("output,options,expected", CASES)
def test_extract_choice(output: str, options: list[str], expected: int | None) -> None:
    got = extract_choice(output, options)
    assert got.index == expected, (output, got)


def test_normalize_answer() -> None:
    assert normalize_answer("The Red  Cup!") == "red cup"
    assert normalize_answer("an apple, a pear") == "apple pear"


@pytest.mark.parametrize("output,gold,ok", [
    ("The red cup.", "red cup", True),
    ("The answer is: the towel", "towel", True),
    ("Yes, they were.", "yes", True),
    ("No.", "no", True),
    ("yes", "no", False),
    ("the cup and the box", "cup", False),
    ("", "cup", False),
    ("Answer: Put down the towel.", "put down the towel", True),
])
def test_open_match(output: str, gold: str, ok: bool) -> None:
    assert open_match(output, gold) is ok


def test_extract_open_span() -> None:
    assert extract_open("Step 1: find the cup. Step 2: ... The answer is the sofa.") == "the sofa"


def test_noise_never_crashes() -> None:
    import random

    rng = random.Random(0)
    alphabet = "ABCDabcd ()[]{}.:,;!?'\"\n\t*_-<|>/\\0123456789\ufffdéü漢"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        got = extract_choice(text, STAR)
        assert got.index is None or 0 <= got.index < len(STAR)
        open_match(text, "yes")
        extract_open(text)
