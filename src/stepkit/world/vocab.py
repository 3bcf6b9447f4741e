"""The synthetic world's vocabulary and visual language (shared by the simulator and its perceiver).

Everything here is public knowledge about how the world *looks* (class shapes in world units,
the colour palette, the drawing geometry), never the state of a particular video.
World units: x grows to the right, y is height above the floor; a standing person is 60 tall.
"""

from __future__ import annotations

# --- classes --------------------------------------------------------------------------------

PERSON = "person"

#: Static furniture: (width, height) in world units.
STATIC_CLASSES: dict[str, tuple[float, float]] = {
    "door": (26.0, 70.0),
    "shelf": (36.0, 60.0),
    "table": (44.0, 28.0),
    "chair": (16.0, 44.0),
    "bed": (64.0, 34.0),
}

#: Dynamic objects: size name -> (width, height) in world units.
DYNAMIC_CLASSES: dict[str, dict[str, tuple[float, float]]] = {
    "cup": {"small": (7.0, 8.0), "large": (10.0, 12.0)},
    "box": {"small": (15.0, 10.0), "large": (22.0, 15.0)},
    "book": {"": (16.0, 4.0)},
    "phone": {"": (6.0, 12.0)},
    "pillow": {"": (20.0, 8.0)},
    "blanket": {"": (30.0, 6.0)},
}

OBJECT_CLASSES: dict[str, str] = {PERSON: "dynamic", **{c: "static" for c in STATIC_CLASSES},
                                  **{c: "dynamic" for c in DYNAMIC_CLASSES}}

#: Surfaces things can rest on: class -> heights (world units) of the supporting surfaces.
SURFACES: dict[str, tuple[float, ...]] = {"table": (28.0,), "shelf": (2.5, 32.5), "bed": (20.0,)}
SEATS = ("chair", "bed")
CONTAINERS = ("box",)
#: Held objects raised to the face are used: class -> verb.
RAISE_VERBS: dict[str, str] = {"cup": "drink from", "book": "read", "phone": "use"}

# --- attributes -----------------------------------------------------------------------------

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "yellow", "purple", "orange", "pink", "teal"),
    "size": ("small", "large"),
    "material": ("wood", "metal"),
    "state": ("open", "closed"),
}
OBJECT_COLORS = ("red", "blue", "green", "yellow", "purple")
SHIRT_COLORS = ("orange", "pink", "teal")
MATERIALS = ("wood", "metal")
#: Furniture with a material attribute (the door is always wood and has a state instead).
MATERIAL_CLASSES = ("shelf", "table", "chair", "bed")

# --- relations and actions ------------------------------------------------------------------

PREDICATES = ("holding", "on", "inside", "next to", "in front of", "sitting on", "lying on", "looking at")
VERBS = ("walk to", "pick up", "put down", "put in", "give", "throw", "open", "close",
         "sit down", "lie down", "stand up", "drink from", "read", "use")

# --- palette (RGB) --------------------------------------------------------------------------

PALETTE: dict[str, tuple[int, int, int]] = {
    "wall": (205, 215, 225),
    "floor": (95, 95, 95),
    "doorway": (25, 22, 22),
    "wood": (150, 95, 50),
    "metal": (150, 160, 178),
    "skin": (250, 200, 160),
    "pants": (45, 45, 120),
    "gaze": (0, 230, 240),
    "outline": (62, 62, 62),   # a 1-pixel ring around small objects keeps same-coloured ones apart
    "red": (220, 40, 40),
    "blue": (40, 90, 230),
    "green": (40, 170, 60),
    "yellow": (240, 210, 40),
    "purple": (130, 50, 170),
    "orange": (245, 140, 30),
    "pink": (240, 110, 200),
    "teal": (20, 150, 150),
}

# --- person geometry (world units) ------------------------------------------------------------

FLOOR_DEPTH = 16.0          # the floor band below the baseline, always in view
TORSO_HALF = 6.0            # half width of a torso; stations leave STATION_GAP to furniture
STATION_GAP = 3.0
NEXT_TO_GAP = 6.0           # a standing, still person this close to furniture is "next to" it
PERSON_GAP = 14.0           # people who walk up to someone stop this far away …
PERSON_NEXT_TO_GAP = 18.0   # … and two still people this close are "next to" each other
HEAD_R = 6.0
HEAD_Y = {"stand": 54.0, "sit": 44.0, "lie": 26.0, "trans": 49.0}  # "trans": crouching mid-move
#: Where a held object's centre sits relative to the holder's head centre (x mirrored by facing).
HAND_OFFSET = (10.0, -20.0)
RAISED_OFFSET = (12.0, 0.0)
INSIDE_LIFT = 3.0           # an object in a box rests this far above the box's bottom
WALK_SPEED = 60.0           # units per second
GAZE_START = 7.0            # gaze lines start this far from the head centre (outside the head)
