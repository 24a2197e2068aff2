"""What the synthetic voices say: sentences from a fixed word list and a small grammar, digit strings, command
words; and the normalisation of every transcript (synthetic or real) to the character set of the wav2vec2 English
character vocabularies: uppercase A-Z, apostrophe and space.

All draws go through numpy's legacy `RandomState`, whose streams numpy keeps frozen across versions.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

DIGITS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
# The ten core words of the Speech Commands data set, then a few more for larger label sets.
COMMAND_WORDS = ("YES", "NO", "UP", "DOWN", "LEFT", "RIGHT", "ON", "OFF", "STOP", "GO")
EXTRA_COMMAND_WORDS = ("FORWARD", "BACKWARD", "FOLLOW", "LEARN", "WOW", "HOUSE", "BIRD", "TREE")

# The word classes of the grammar. Every letter A-Z occurs, and so does the apostrophe (contractions).
_WORDS: dict[str, tuple[str, ...]] = {
    "det": ("THE", "A", "ONE", "EVERY", "THIS", "THAT", "MY", "YOUR", "HIS", "HER", "OUR", "THEIR"),
    "adj": ("OLD", "YOUNG", "BIG", "SMALL", "RED", "GREEN", "BLUE", "BLACK", "WHITE", "QUICK", "LAZY", "HAPPY",
            "QUIET", "LOUD", "WARM", "COLD", "BRIGHT", "DARK", "HEAVY", "SOFT", "JOLLY", "FUZZY", "BRAVE", "CLEVER"),
    "noun": ("MAN", "WOMAN", "CHILD", "DOG", "CAT", "HORSE", "BIRD", "FISH", "BOAT", "TRAIN", "CAR", "HOUSE",
             "TREE", "RIVER", "CITY", "TABLE", "CHAIR", "BOOK", "LETTER", "DOOR", "WINDOW", "GARDEN", "TEACHER",
             "DOCTOR", "FARMER", "KING", "QUEEN", "ZEBRA", "FOX", "BOX", "JUDGE", "JACKET", "VILLAGE", "WAGON",
             "KITTEN", "PHONE", "MOUNTAIN", "SQUIRREL"),
    "verb_past": ("SAW", "FOUND", "TOOK", "GAVE", "LIKED", "WANTED", "OPENED", "CLOSED", "PAINTED", "CARRIED",
                  "WATCHED", "FOLLOWED", "HEARD", "KNEW", "BOUGHT", "SOLD", "FIXED", "PUSHED", "PULLED", "VISITED",
                  "JUMPED OVER", "LOOKED AT"),
    "verb_intr": ("SLEPT", "LAUGHED", "WAITED", "ARRIVED", "LEFT", "SANG", "DANCED", "WALKED", "RAN", "SMILED",
                  "FELL", "STAYED", "WORKED", "SWAM"),
    "verb_base": ("SEE", "FIND", "TAKE", "LIKE", "WANT", "OPEN", "HEAR", "KNOW", "BUY", "FIX", "MOVE", "QUIZ"),
    "neg": ("DIDN'T", "CAN'T", "WON'T", "DON'T", "COULDN'T", "WOULDN'T"),
    "adv": ("SLOWLY", "QUICKLY", "TODAY", "YESTERDAY", "AGAIN", "OUTSIDE", "AT NIGHT", "IN THE MORNING", "TOGETHER",
            "EVERY DAY"),
    "prep": ("IN", "ON", "UNDER", "NEAR", "BEHIND", "WITH", "FROM", "INTO", "OVER", "BESIDE"),
    "pron": ("HE", "SHE", "THEY", "WE", "I", "YOU"),
    "place": ("HERE", "THERE", "AT HOME", "IN TOWN", "BY THE SEA"),
}

# A template is a list of slots: a word class, "np" (determiner, optional adjective, noun) or a literal in quotes.
_TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("np", "verb_past", "np"),
    ("np", "verb_intr", "adv"),
    ("np", "verb_intr"),
    ("np", "verb_past", "np", "prep", "np"),
    ("pron", "verb_past", "np", "adv"),
    ("pron", "neg", "verb_base", "np"),
    ("'IT'S'", "np"),
    ("'THERE IS'", "np", "prep", "np"),
    ("'WHERE IS'", "np"),
    ("np", "'IS'", "place"),
    ("pron", "'SAID THAT'", "np", "verb_intr"),
)


def _pick(rng: Any, items: tuple[str, ...]) -> str:
    return items[rng.randint(len(items))]


def _noun_phrase(rng: Any) -> str:
    words = [_pick(rng, _WORDS["det"])]
    if rng.rand() < 0.4:
        words.append(_pick(rng, _WORDS["adj"]))
    words.append(_pick(rng, _WORDS["noun"]))
    return " ".join(words)


def sentence(rng: Any) -> str:
    """One sentence of the grammar, uppercase (e.g. "THE JOLLY FARMER FIXED A WAGON"); rng: np.random.RandomState."""
    parts = []
    for slot in _TEMPLATES[rng.randint(len(_TEMPLATES))]:
        if slot.startswith("'"):
            parts.append(slot.strip("'"))
        elif slot == "np":
            parts.append(_noun_phrase(rng))
        else:
            parts.append(_pick(rng, _WORDS[slot]))
    return " ".join(parts)


def digit_string(rng: Any, min_digits: int = 2, max_digits: int = 6) -> str:
    """Digit words, e.g. "FOUR ZERO NINE"; the number of digits is uniform in [min_digits, max_digits]."""
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits} and {max_digits}")
    n = min_digits + rng.randint(max_digits - min_digits + 1)
    return " ".join(DIGITS[rng.randint(10)] for _ in range(n))


def spoken(transcript: str) -> str:
    """What the engine is given for a transcript: lowercase words (espeak-ng would spell out some capitals)."""
    return transcript.lower()


def vocabulary() -> set[str]:
    """Every word the sentence generator and digit strings can produce."""
    words = {w for items in _WORDS.values() for phrase in items for w in phrase.split()}
    words |= {w for t in _TEMPLATES for slot in t if slot.startswith("'") for w in slot.strip("'").split()}
    return words | set(DIGITS)


# ------------------------------------------------------------------------------------------------ normalisation

_ONES = ("ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN FIFTEEN SIXTEEN "
         "SEVENTEEN EIGHTEEN NINETEEN").split()
_TENS = "_ _ TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()


def number_words(n: int) -> str:
    """An integer 0 <= n < 10**9 in English words ("ONE HUNDRED TWENTY THREE")."""
    if not 0 <= n < 10**9:
        raise ValueError(f"number_words covers 0 <= n < 10**9, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in ((10**6, "MILLION"), (1000, "THOUSAND"), (100, "HUNDRED")):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{number_words(head)} {name}" + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError("unreachable")


def _digits(match: re.Match) -> str:
    s = match.group(0)
    if len(s) > 9 or (len(s) > 1 and s.startswith("0")):  # codes and long numbers are read digit by digit
        return " " + " ".join(DIGITS[int(c)] for c in s) + " "
    return " " + number_words(int(s)) + " "


def normalize_text(text: str) -> str:
    """A transcript in the character set of the wav2vec2 English vocabularies: uppercase A-Z, apostrophe and single
    spaces. Accents are stripped, numbers spelled out ("10" -> "TEN", "007" -> "ZERO ZERO SEVEN"), hyphens and
    punctuation become word breaks, and apostrophes are kept only inside words ("DIDN'T", not "'QUOTED'")."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = re.sub(r"\d+", _digits, text).upper()
    text = re.sub(r"[^A-Z']+", " ", text)
    text = re.sub(r"(?<![A-Z])'+|'+(?![A-Z])", " ", text)
    return " ".join(text.split())
