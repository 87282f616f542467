"""A heavy collector: one owner with the whole LEGO catalogue's shape (about 20k sets).

Modelled on the Rebrickable catalogue: a long tail of ~150 themes where a handful hold most
sets (gear, Star Wars, Technic, City...), titles from a few thousand distinct words and
phrases where "Star Wars" appears in a quarter of a percent of them (advent calendars, packs, key
chains, books), set numbers ``NNNNN-V`` from a 1949-2025 range, piece counts from a
long-tailed distribution (many gear items have none). Fixed seed in, same rows out.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import data

HEAVY_USER = "cognito-sub-heavy-collector"

_BIG_THEMES = [
    ("Gear", 11.0),
    ("Star Wars", 6.0),
    ("Technic", 4.5),
    ("Books", 4.0),
    ("City", 4.0),
    ("Duplo", 3.5),
    ("Friends", 3.0),
    ("Collectable Minifigures", 3.0),
    ("Key Chains", 2.5),
    ("Creator", 2.5),
    ("Ninjago", 2.5),
    ("Bionicle", 2.0),
    ("Educational and Dacta", 2.0),
    ("Town", 2.0),
    ("Super Heroes Marvel", 1.8),
    ("Harry Potter", 1.2),
    ("Castle", 1.2),
    ("Space", 1.2),
    ("Trains", 1.0),
    ("Ideas", 0.6),
]
# The long tail: many small themes of a few dozen sets each.
_SMALL_THEMES = [f"{word} Series" for word in ("Minor", "Promo", "Legacy", "Retail", "Club")]
_TAIL = [
    (f"{prefix} {suffix}", 0.25)
    for prefix in ("Adventurers", "Pirates", "Racers", "Aqua", "Exo", "Rock", "Alpha", "Agents")
    for suffix in ("Classic", "Team", "Force", "World", "Legends", "Quest", "Raiders", "Zone")
] + [(name, 0.2) for name in _SMALL_THEMES]
THEMES = _BIG_THEMES + _TAIL

_WORDS = [
    "Millennium", "Imperial", "Rebel", "Ancient", "Modular", "Police", "Fire", "Space",
    "Medieval", "Ultimate", "Classic", "Mighty", "Hidden", "Golden", "Arctic", "Jungle",
    "Downtown", "Royal", "Secret", "Turbo", "Desert", "Ocean", "Mountain", "Dino", "Robot",
    "Rescue", "Racing", "Dragon", "Ninja", "Pirate", "Knight", "Castle", "Train", "Airport",
    "Hospital", "Harbour", "Farm", "Cargo", "Monster", "Shadow",
]  # fmt: skip
_NOUNS = [
    "Falcon", "Station", "Cruiser", "Harbor", "Temple", "Garage", "Rover", "Bookshop",
    "Lighthouse", "Observatory", "Excavator", "Shuttle", "Market", "Academy", "Tree House",
    "Crane", "Truck", "Helicopter", "Starfighter", "Walker", "Speeder", "Bus", "Tower",
    "Bridge", "Base", "Outpost", "Ship", "Submarine", "Jet", "Buggy", "Loader", "Camper",
    "Workshop", "Mech", "Fortress", "Dojo", "Diner", "Café", "Hotel", "Museum",
]  # fmt: skip
_KINDS = ["", "", "", " Set", " Pack", " Bucket", " Key Chain", " Magnet", " Minifigure"]
_STAR_WARS = [
    "Star Wars Advent Calendar {year}",
    "Star Wars Battle Pack",
    "Star Wars Key Chain",
    "Star Wars Magnet Set",
    "LEGO Star Wars Character Encyclopedia",
    "Star Wars Minifigure Collection {year}",
    "Star Wars Bucket",
]
STAR_WARS_SHARE = 0.0025
OLDEST = datetime(1949, 1, 1, tzinfo=UTC)


def _title(rng: random.Random) -> str:
    year = rng.randint(1999, 2025)
    if rng.random() < STAR_WARS_SHARE:
        return rng.choice(_STAR_WARS).format(year=year)
    title = f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)}{rng.choice(_KINDS)}"
    return f"{title} {year}" if rng.random() < 0.1 else title


def _pieces(rng: random.Random, theme: str) -> int | None:
    if theme in ("Gear", "Books", "Key Chains") or rng.random() < 0.05:
        return None if rng.random() < 0.5 else 0
    return min(11_695, int(rng.lognormvariate(4.8, 1.2)))


def catalogue_row(rng: random.Random, index: int) -> dict[str, Any]:
    """One catalogue entry as a caller would pass it to ``import_sets``."""
    row = data.set_row(rng, ["0"])
    theme = rng.choices([t for t, _ in THEMES], [w for _, w in THEMES])[0]
    released = OLDEST + timedelta(days=round((1 - rng.random() ** 3) * 76 * 365))
    row.update(
        title=_title(rng),
        theme=theme,
        set_number=f"{1000 + index * 4 + rng.randint(0, 3)}-{rng.choice((1, 1, 1, 2))}",
        piece_count=_pieces(rng, theme),
        release_date=released,
        purchase_date=released + timedelta(days=rng.randint(0, 3000)),
        images=row["images"][:2],
    )
    return row


def catalogue(seed: int, sets: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [catalogue_row(rng, index) for index in range(sets)]
