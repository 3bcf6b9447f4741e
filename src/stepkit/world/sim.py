"""The world's state over time: room layout, a seeded planner of actions, and camera shots.

The planner writes, frame by frame, where every entity is (persons, furniture, small objects),
what it rests on or who holds it, who looks at what, and which actions happen when. The renderer
and the ground-truth extractor both read this :class:`Timeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stepkit.world import vocab as V


@dataclass
class Furniture:
    """A static object placed on the floor at ``x0``."""

    id: str
    label: str
    x0: float
    material: str
    side: int = 1  # chair: the side its back is on (-1 left, +1 right); bed: headboard side

    @property
    def w(self) -> float:
        return V.STATIC_CLASSES[self.label][0]

    @property
    def h(self) -> float:
        return V.STATIC_CLASSES[self.label][1]

    @property
    def x1(self) -> float:
        return self.x0 + self.w

    @property
    def cx(self) -> float:
        return self.x0 + self.w / 2

    def surface_spans(self) -> list[tuple[float, float, float]]:
        """(height, x_from, x_to) of each surface things can rest on."""
        if self.label == "table":
            return [(28.0, self.x0, self.x1)]
        if self.label == "shelf":
            return [(y, self.x0 + 2.5, self.x1 - 2.5) for y in V.SURFACES["shelf"]]
        if self.label == "bed":
            hb = 4.0
            return [(20.0, self.x0 + (hb if self.side < 0 else 0), self.x1 - (hb if self.side > 0 else 0))]
        return []

    def stations(self) -> list[tuple[float, int]]:
        """(x, facing) where a person stands to use it; people face away, so what they hold is clear of it."""
        left = (self.x0 - V.STATION_GAP - V.TORSO_HALF, -1)
        right = (self.x1 + V.STATION_GAP + V.TORSO_HALF, 1)
        if self.label == "door":
            return [(self.cx, 1)]
        if self.label == "chair":
            return [right] if self.side < 0 else [left]  # in front of the seat, back to it
        return [left, right]


@dataclass
class Item:
    """A small movable object."""

    id: str
    label: str
    color: str
    size: str

    @property
    def dims(self) -> tuple[float, float]:
        return V.DYNAMIC_CLASSES[self.label][self.size]


@dataclass
class Person:
    id: str
    color: str


@dataclass
class ActionRec:
    """An action from frame ``f0`` (last frame of the old state) to ``f1`` (first of the new)."""

    verb: str
    agent: str
    f0: int
    f1: int
    object: str | None = None
    target: str | None = None


@dataclass
class Timeline:
    """Per-frame state of one world video."""

    n: int
    fps: float
    furniture: list[Furniture]
    items: list[Item]
    persons: list[Person]
    room_w: float
    # persons: arrays over frames
    px: dict[str, np.ndarray] = field(default_factory=dict)
    head_y: dict[str, np.ndarray] = field(default_factory=dict)
    pose: dict[str, list[str]] = field(default_factory=dict)        # stand | sit | lie | trans
    facing: dict[str, np.ndarray] = field(default_factory=dict)
    moving: dict[str, np.ndarray] = field(default_factory=dict)
    seat: dict[str, list[str | None]] = field(default_factory=dict)
    gaze: dict[str, list[str | None]] = field(default_factory=dict)
    # items: support per frame: ("on", F, cx, yb) | ("in", B) | ("held", P, r) | ("free", cx, cy)
    sup: dict[str, list[tuple]] = field(default_factory=dict)
    door: dict[str, np.ndarray] = field(default_factory=dict)         # openness 0..1
    actions: list[ActionRec] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)                     # first frame of each new shot
    views: list[tuple[float, float]] = field(default_factory=list)     # (x_left, scale) per shot

    def shot_of(self, f: int) -> int:
        k = 0
        for c in self.cuts:
            if f >= c:
                k += 1
        return k


# --- geometry shared by rendering and ground truth -------------------------------------------

def head_center(tl: Timeline, pid: str, f: int) -> tuple[float, float]:
    """Head centre (world units) of person ``pid`` at frame ``f``."""
    pose = tl.pose[pid][f]
    if pose == "lie":
        bed = _furn(tl, tl.seat[pid][f])
        hx = bed.x1 - 10.0 if bed.side > 0 else bed.x0 + 10.0
        return hx, V.HEAD_Y["lie"]
    return float(tl.px[pid][f]), float(tl.head_y[pid][f])


def _furn(tl: Timeline, fid: str | None) -> Furniture:
    for F in tl.furniture:
        if F.id == fid:
            return F
    raise KeyError(fid)


def item_box(tl: Timeline, iid: str, f: int, _depth: int = 0) -> tuple[float, float, float, float]:
    """World box (x0, y0, x1, y1) of item ``iid`` at frame ``f`` (y up)."""
    it = next(i for i in tl.items if i.id == iid)
    w, h = it.dims
    s = tl.sup[iid][f]
    if s[0] == "on":
        cx, yb = s[2], s[3]
    elif s[0] == "in":
        bx0, by0, bx1, _ = item_box(tl, s[1], f, _depth + 1)
        cx, yb = (bx0 + bx1) / 2, by0 + V.INSIDE_LIFT
    elif s[0] == "held":
        hx, hy = head_center(tl, s[1], f)
        fc = float(tl.facing[s[1]][f])
        r = s[2]
        ox = V.HAND_OFFSET[0] * (1 - r) + V.RAISED_OFFSET[0] * r
        oy = V.HAND_OFFSET[1] * (1 - r) + V.RAISED_OFFSET[1] * r
        cx, yb = hx + fc * ox, hy + oy - h / 2
    else:
        cx, yb = s[1], s[2] - h / 2
    return (cx - w / 2, yb, cx + w / 2, yb + h)


def person_box(tl: Timeline, pid: str, f: int) -> tuple[float, float, float, float]:
    """World box of a person's body (head, torso, legs; arms excluded)."""
    pose = tl.pose[pid][f]
    hx, hy = head_center(tl, pid, f)
    if pose == "lie":
        bed = _furn(tl, tl.seat[pid][f])
        d = -1 if bed.side > 0 else 1
        xs = (hx - d * V.HEAD_R, hx + d * 50.0)
        return (min(xs), 20.0, max(xs), 32.0)
    fc = float(tl.facing[pid][f])
    if pose == "sit":
        xs = (hx - V.TORSO_HALF, hx + V.TORSO_HALF, hx + fc * 14.0)
        return (min(xs), 0.0, max(xs), hy + V.HEAD_R)
    return (hx - V.TORSO_HALF, 0.0, hx + V.TORSO_HALF, hy + V.HEAD_R)


def furniture_box(F: Furniture) -> tuple[float, float, float, float]:
    return (F.x0, 0.0, F.x1, F.h)


# --- the planner ------------------------------------------------------------------------------

class _Planner:
    """Builds a Timeline step by step with a seeded RNG."""

    def __init__(self, rng: np.random.Generator, n: int, fps: float):
        self.rng = rng
        self.n = n
        self.fps = fps
        self._layout()
        tl = Timeline(n=n, fps=fps, furniture=self.furniture, items=self.items, persons=self.persons,
                      room_w=self.room_w)
        # frames past n absorb a step that overruns the end; the last one is scratch space
        n = self.n_alloc = n + int(12 * fps) + 2
        self.scratch = n - 1
        for p in self.persons:
            tl.px[p.id] = np.zeros(n)
            tl.head_y[p.id] = np.zeros(n)
            tl.pose[p.id] = [""] * n
            tl.facing[p.id] = np.ones(n, dtype=np.int8)
            tl.moving[p.id] = np.zeros(n, dtype=bool)
            tl.seat[p.id] = [None] * n
            tl.gaze[p.id] = [None] * n
        for it in self.items:
            tl.sup[it.id] = [()] * n
        for F in self.furniture:
            if F.label == "door":
                tl.door[F.id] = np.zeros(n)
        self.tl = tl
        self.cursor = -1

    # layout ---------------------------------------------------------------------------------
    def _layout(self) -> None:
        rng = self.rng
        labels = ["table"] + list(rng.choice(["door", "shelf", "chair", "bed"], size=int(rng.integers(2, 4)), replace=False))
        if rng.random() < 0.35:
            labels.append(str(rng.choice(["chair", "table"])))
        rng.shuffle(labels)
        furniture: list[Furniture] = []
        used: set[tuple[str, str]] = set()
        x = 30.0
        for k, lab in enumerate(labels):
            mats = [m for m in V.MATERIALS if (lab, m) not in used] if lab in V.MATERIAL_CLASSES else ["wood"]
            mat = str(rng.choice(mats))
            used.add((lab, mat))
            side = int(rng.choice([-1, 1]))
            furniture.append(Furniture(id=f"f{k}", label=lab, x0=x, material=mat, side=side))
            x += V.STATIC_CLASSES[lab][0] + float(rng.uniform(46, 56))
        self.room_w = x - 16.0
        # rename ids by label for readability
        counts: dict[str, int] = {}
        for F in furniture:
            counts[F.label] = counts.get(F.label, 0) + 1
            F.id = f"{F.label}{counts[F.label]}"
        self.furniture = furniture

        n_people = 2 if rng.random() < 0.45 else 1
        shirts = list(rng.permutation(V.SHIRT_COLORS))[:n_people]
        self.persons = [Person(id=f"person{k + 1}", color=str(c)) for k, c in enumerate(shirts)]

        # items with unique (label, color, size) signatures; some same-class pairs
        items: list[Item] = []
        sigs: set[tuple[str, str, str]] = set()
        classes = list(V.DYNAMIC_CLASSES)
        weights = np.array([3.0, 1.6, 2.0, 1.4, 1.0, 1.0])
        n_items = int(rng.integers(4, 8))
        tries = 0
        while len(items) < n_items and tries < 200:
            tries += 1
            if items and rng.random() < 0.3:
                lab = items[-1].label  # a second one of the same class, told apart by attributes
            else:
                lab = str(rng.choice(classes, p=weights / weights.sum()))
            if lab == "box" and sum(i.label == "box" for i in items) >= 2:
                continue
            size = str(rng.choice(list(V.DYNAMIC_CLASSES[lab])))
            color = str(rng.choice(V.OBJECT_COLORS))
            if (lab, color, size) in sigs:
                continue
            sigs.add((lab, color, size))
            items.append(Item(id="", label=lab, color=color, size=size))
        counts = {}
        for it in items:
            counts[it.label] = counts.get(it.label, 0) + 1
            it.id = f"{it.label}{counts[it.label]}"
        self.items = items

    # state ----------------------------------------------------------------------------------
    def _init_state(self) -> None:
        rng = self.rng
        self.P: dict[str, dict] = {}
        self.I: dict[str, tuple] = {}
        self.door_o: dict[str, float] = {}
        for F in self.furniture:
            if F.label == "door":
                self.door_o[F.id] = float(rng.choice([0.0, 1.0]))
        # boxes first so others can go inside them
        order = sorted(self.items, key=lambda i: i.label != "box")
        for it in order:
            placed = False
            if it.label != "box" and rng.random() < 0.3:
                for B in self.items:
                    if B.label == "box" and B.id in self.I and self._box_fits(B, it):
                        self.I[it.id] = ("in", B.id)
                        placed = True
                        break
            if not placed:
                spot = self._free_spot(it, rng.permutation(len(self.furniture)))
                if spot is None:
                    self.items.remove(it)
                    continue
                self.I[it.id] = ("on", spot[0], spot[1], spot[2])
        stations = self._all_stations()
        rng.shuffle(stations)
        taken: list[float] = []
        for p in self.persons:
            for x, fc, F in stations:
                if all(abs(x - t) > 40 for t in taken) and F.label != "door":
                    taken.append(x)
                    self.P[p.id] = dict(x=x, hy=V.HEAD_Y["stand"], pose="stand", facing=fc, moving=False,
                                        seat=None, gaze=None, at=F.id, back=None)
                    break
            else:  # fall back to any free spot
                x = 20.0 + 40.0 * len(taken)
                taken.append(x)
                self.P[p.id] = dict(x=x, hy=V.HEAD_Y["stand"], pose="stand", facing=1, moving=False,
                                    seat=None, gaze=None, at=None, back=None)

    def _all_stations(self) -> list[tuple[float, int, Furniture]]:
        out = []
        for F in self.furniture:
            for x, fc in F.stations():
                if 8 <= x <= self.room_w - 8:
                    out.append((x, fc, F))
        return out

    def _box_fits(self, B: Item, it: Item) -> bool:
        if B.color == it.color or any(s == ("in", B.id) for s in self.I.values()):
            return False
        return it.dims[0] < B.dims[0] - 3 and it.label != "box"

    def _occupied(self, F: Furniture, y: float, exclude: str | None = None) -> list[tuple[float, float]]:
        spans = []
        for iid, s in self.I.items():
            if iid != exclude and s[0] == "on" and s[1] == F.id and abs(s[3] - y) < 0.1:
                w = self._item(iid).dims[0]
                spans.append((s[2] - w / 2, s[2] + w / 2))
        return spans

    def _free_spot(self, it: Item, order) -> tuple[str, float, float] | None:
        """(furniture id, centre x, surface y) of a free place for ``it``, trying furniture in ``order``."""
        w = it.dims[0]
        for k in order:
            F = self.furniture[int(k)]
            for y, sx0, sx1 in F.surface_spans():
                lo, hi = max(sx0 + w / 2, sx0 + 8.0), min(sx1 - w / 2, sx1 - 8.0)
                if lo > hi:
                    if sx1 - sx0 >= w:
                        lo = hi = (sx0 + sx1) / 2
                    else:
                        continue
                occ = self._occupied(F, y, exclude=it.id)
                cands = [lo + (hi - lo) * q for q in self.rng.permutation(np.linspace(0, 1, 7))]
                for c in cands:
                    if all(c + w / 2 + 2 <= a or c - w / 2 - 2 >= b for a, b in occ):
                        return F.id, round(float(c), 2), y
        return None

    def _item(self, iid: str) -> Item:
        return next(i for i in self.items if i.id == iid)

    def _F(self, fid: str) -> Furniture:
        return _furn(self.tl, fid)

    def _emit(self, f: int) -> None:
        tl = self.tl
        for pid, s in self.P.items():
            tl.px[pid][f] = s["x"]
            tl.head_y[pid][f] = s["hy"]
            tl.pose[pid][f] = s["pose"]
            tl.facing[pid][f] = s["facing"]
            tl.moving[pid][f] = s["moving"]
            tl.seat[pid][f] = s["seat"]
            tl.gaze[pid][f] = s["gaze"]
        for iid, s in self.I.items():
            tl.sup[iid][f] = s
        for did, o in self.door_o.items():
            tl.door[did][f] = o

    def _frames(self, seconds: float) -> int:
        return max(2, int(round(seconds * self.fps)))

    def _pause(self, seconds: float) -> None:
        k = self._frames(seconds)
        for _ in range(k):
            if self.cursor + 1 >= self.n:
                return
            self.cursor += 1
            self._emit(self.cursor)

    def _step(self, k: int, update) -> tuple[int, int]:
        """Run ``update(u)`` for u in (0, 1] over ``k`` frames; returns (f0, f1)."""
        f0 = self.cursor
        for j in range(1, k + 1):
            update(j / k)
            self.cursor += 1
            self._emit(self.cursor)
        return f0, self.cursor

    def _room_left(self, seconds: float) -> bool:
        return self.cursor + self._frames(seconds) + 2 < self.n

    # actions --------------------------------------------------------------------------------
    def _act(self, verb: str, pid: str, f0: int, f1: int, obj: str | None = None, target: str | None = None) -> None:
        self.tl.actions.append(ActionRec(verb=verb, agent=pid, f0=f0, f1=f1, object=obj, target=target))

    def _held_by(self, pid: str) -> str | None:
        for iid, s in self.I.items():
            if s[0] == "held" and s[1] == pid:
                return iid
        return None

    def _item_pos(self, iid: str) -> tuple[float, float]:
        """Current centre of an item in world units."""
        f = self.scratch
        self._emit(f)
        x0, y0, x1, y1 = item_box(self.tl, iid, f)
        return (x0 + x1) / 2, (y0 + y1) / 2

    def _transfer(self, iid: str, new: tuple, seconds: float, arc: float = 5.0) -> tuple[int, int]:
        """Move an item to its new support: up, over and down, clear of other items."""
        a = self._item_pos(iid)
        self.I[iid] = new
        b = self._item_pos(iid)
        k = self._frames(seconds)
        h = self._item(iid).dims[1]
        top = max(a[1], b[1]) + max(arc, 28.0 + h / 2)

        def upd(u: float) -> None:
            if u >= 1.0:
                self.I[iid] = new
                return
            if u < 0.25:
                x, y = a[0], a[1] + (top - a[1]) * u / 0.25
            elif u < 0.75:
                x, y = a[0] + (b[0] - a[0]) * (u - 0.25) / 0.5, top
            else:
                x, y = b[0], top + (b[1] - top) * (u - 0.75) / 0.25
            self.I[iid] = ("free", x, y)

        return self._step(k, upd)

    def walk(self, pid: str, x: float, facing: int, at: str | None) -> None:
        s = self.P[pid]
        x0 = s["x"]
        dist = abs(x - x0)
        if dist < 1:
            return
        k = self._frames(max(dist / V.WALK_SPEED, 0.5))
        s["facing"] = 1 if x > x0 else -1
        s["at"] = None

        def upd(u: float) -> None:
            s["x"] = x0 + (x - x0) * u
            s["moving"] = u < 1.0
            if u >= 1.0:
                s["facing"] = facing
                s["at"] = at

        f0, f1 = self._step(k, upd)
        self._act("walk to", pid, f0, f1, target=at)

    def _transition(self, pid: str, x1: float, hy1: float, final_pose: str, seconds: float, seat) -> tuple[int, int]:
        s = self.P[pid]
        x0 = s["x"]

        def upd(u: float) -> None:
            s["x"] = x0 + (x1 - x0) * u
            s["hy"] = hy1 if u >= 1.0 else V.HEAD_Y["trans"]
            s["pose"] = final_pose if u >= 1.0 else "trans"
            s["seat"] = seat if u >= 1.0 else s["seat"]

        return self._step(self._frames(seconds), upd)

    # the plan -------------------------------------------------------------------------------
    def plan(self) -> Timeline:
        rng = self.rng
        self._init_state()
        self.tl.items = self.items
        self._pause(float(rng.uniform(0.6, 1.2)))
        actor = self.persons[0].id
        while self.cursor < self.n - 1:
            if len(self.persons) > 1 and rng.random() < 0.4:
                actor = next(p.id for p in self.persons if p.id != actor)
            done = self._one_step(actor)
            if not done:
                self._pause(0.5)
            self._pause(float(rng.uniform(0.4, 0.8)))
        return self._truncate()

    def _truncate(self) -> Timeline:
        tl, n = self.tl, self.n
        for d in (tl.px, tl.head_y, tl.pose, tl.facing, tl.moving, tl.seat, tl.gaze, tl.sup, tl.door):
            for k in d:
                d[k] = d[k][:n]
        tl.actions = [a for a in tl.actions if a.f1 <= n - 1]
        return tl

    def _one_step(self, pid: str) -> bool:
        rng = self.rng
        s = self.P[pid]
        opts: list[tuple[float, str, tuple]] = []
        held = self._held_by(pid)
        here = self._F(s["at"]) if s["at"] in {F.id for F in self.furniture} else None
        others = [q for q in self.persons if q.id != pid]
        if s["pose"] in ("sit", "lie"):
            opts.append((3.0, "stand_up", ()))
            if held and self._item(held).label in V.RAISE_VERBS:
                opts.append((3.0, "raise", (held,)))
            opts.append((1.2, "look", ()))
        else:
            if held:
                it = self._item(held)
                if here is not None and here.surface_spans():
                    opts.append((3.0, "put_down", (held, here)))
                if here is not None:
                    for B in self.items:
                        if B.label == "box" and self.I[B.id][0] == "on" and self.I[B.id][1] == here.id and self._box_fits(B, it):
                            opts.append((3.0, "put_in", (held, B.id)))
                if it.label in V.RAISE_VERBS:
                    opts.append((2.0, "raise", (held,)))
                for q in others:
                    if s["at"] == q.id and self.P[q.id]["pose"] == "stand" and self._held_by(q.id) is None:
                        opts.append((6.0, "give", (held, q.id)))
                for F in self.furniture:
                    if F.surface_spans() and F is not here and abs(F.cx - s["x"]) < 110:
                        opts.append((1.0, "throw", (held, F)))
            else:
                if here is not None:
                    for iid, sp in self.I.items():
                        on_here = (sp[0] == "on" and sp[1] == here.id) or (
                            sp[0] == "in" and self.I[sp[1]][0] == "on" and self.I[sp[1]][1] == here.id)
                        busy_box = self._item(iid).label == "box" and any(v == ("in", iid) for v in self.I.values())
                        if on_here and not busy_box:
                            opts.append((4.0, "pick_up", (iid,)))
                    if here.label == "bed" and not any(sp[0] == "on" and sp[1] == here.id for sp in self.I.values()):
                        opts.append((2.0, "lie_down", (here,)))
                if here is not None and here.label == "door":
                    opts.append((4.0, "door", (here,)))
            if here is not None and here.label == "chair":
                opts.append((2.5, "sit_down", (here,)))
            opts.append((1.5 if len(opts) > 1 else 3.0, "walk", ()))
            if others and s["at"] not in self.P:
                near = 1.0 / (1.0 + abs(self.P[others[0].id]["x"] - s["x"]) / 60.0)
                opts.append(((4.0 if held else 0.5) * near, "walk_person", ()))
            opts.append((0.8, "look", ()))
        w = np.array([o[0] for o in opts])
        kind, args = opts[int(rng.choice(len(opts), p=w / w.sum()))][1:]
        if not self._room_left(2.5):
            self._pause(0.5)
            return True
        return getattr(self, f"_do_{kind}")(pid, *args)

    def _do_walk(self, pid: str) -> bool:
        s = self.P[pid]
        held = self._held_by(pid)
        cands = []
        for x, fc, F in self._all_stations():
            if F.id == s["at"] or not self._station_free(pid, x):
                continue
            wgt = 1.0
            has_items = any(sp[0] == "on" and sp[1] == F.id for sp in self.I.values())
            if held and F.surface_spans():
                wgt = 3.0
            elif not held and has_items:
                wgt = 3.0
            elif F.label == "door":
                wgt = 4.0
            elif F.label in ("chair", "bed"):
                wgt = 2.5
            wgt /= (1.0 + abs(x - s["x"]) / 40.0) ** 2
            cands.append((wgt, x, fc, F.id))
        if not cands:
            return False
        w = np.array([c[0] for c in cands])
        _, x, fc, fid = cands[int(self.rng.choice(len(cands), p=w / w.sum()))]
        if not self._room_left(abs(x - s["x"]) / V.WALK_SPEED + 0.5):
            return False
        self.walk(pid, x, fc, fid)
        return True

    def _station_free(self, pid: str, x: float) -> bool:
        return all(abs(self.P[q]["x"] - x) > 2 * V.TORSO_HALF + V.PERSON_NEXT_TO_GAP + 4 for q in self.P if q != pid)

    def _do_walk_person(self, pid: str) -> bool:
        s = self.P[pid]
        q = next(p.id for p in self.persons if p.id != pid)
        sq = self.P[q]
        if sq["pose"] != "stand" or s["at"] == q:
            return False
        for side in self.rng.permutation([-1, 1]):
            x = sq["x"] + side * (2 * V.TORSO_HALF + V.PERSON_GAP)
            if not 8 <= x <= self.room_w - 8:
                continue
            # keep clear of furniture so the arrival is next to the person only
            if any(F.x0 - 2 - V.TORSO_HALF < x < F.x1 + 2 + V.TORSO_HALF for F in self.furniture) or any(
                    abs(self.P[o]["x"] - x) < 2 * V.TORSO_HALF + V.PERSON_NEXT_TO_GAP + 4 for o in self.P if o not in (pid, q)):
                continue
            if not self._room_left(abs(x - s["x"]) / V.WALK_SPEED + 0.5):
                return False
            # side by side, each facing away: what they hold (or raise) never covers the other
            self.walk(pid, float(x), int(side), q)
            sq["facing"] = int(-side)
            held = self._held_by(pid)
            if held and self._held_by(q) is None and self.rng.random() < 0.8 and self._room_left(1.5):
                self._pause(float(self.rng.uniform(0.4, 0.8)))
                self._do_give(pid, held, q)
            return True
        return False

    def _do_pick_up(self, pid: str, iid: str) -> bool:
        f0, f1 = self._transfer(iid, ("held", pid, 0.0), 0.6)
        self._act("pick up", pid, f0, f1, obj=iid)
        return True

    def _do_put_down(self, pid: str, iid: str, F: Furniture) -> bool:
        spot = self._free_spot(self._item(iid), [self.furniture.index(F)])
        if spot is None:
            return False
        f0, f1 = self._transfer(iid, ("on",) + spot, 0.6)
        self._act("put down", pid, f0, f1, obj=iid, target=F.id)
        return True

    def _do_put_in(self, pid: str, iid: str, bid: str) -> bool:
        f0, f1 = self._transfer(iid, ("in", bid), 0.6)
        self._act("put in", pid, f0, f1, obj=iid, target=bid)
        return True

    def _do_give(self, pid: str, iid: str, qid: str) -> bool:
        f0, f1 = self._transfer(iid, ("held", qid, 0.0), 0.7, arc=3.0)
        self._act("give", pid, f0, f1, obj=iid, target=qid)
        return True

    def _do_throw(self, pid: str, iid: str, F: Furniture) -> bool:
        spot = self._free_spot(self._item(iid), [self.furniture.index(F)])
        if spot is None:
            return False
        s = self.P[pid]
        s["facing"] = 1 if F.cx > s["x"] else -1
        f0, f1 = self._transfer(iid, ("on",) + spot, 0.8, arc=18.0)
        self._act("throw", pid, f0, f1, obj=iid, target=F.id)
        return True

    def _do_raise(self, pid: str, iid: str) -> bool:
        up, hold = self._frames(0.3), self._frames(float(self.rng.uniform(1.0, 2.0)))

        def set_r(r: float):
            def upd(u: float) -> None:
                self.I[iid] = ("held", pid, r(u))
            return upd

        f0, _ = self._step(up, set_r(lambda u: u))
        self._step(hold, set_r(lambda u: 1.0))
        _, f1 = self._step(up, set_r(lambda u: 1.0 - u))
        self._act(V.RAISE_VERBS[self._item(iid).label], pid, f0, f1, obj=iid)
        return True

    def _do_door(self, pid: str, F: Furniture) -> bool:
        o0 = self.door_o[F.id]
        o1 = 1.0 - o0

        def upd(u: float) -> None:
            self.door_o[F.id] = o0 + (o1 - o0) * u

        f0, f1 = self._step(self._frames(1.0), upd)
        self._act("open" if o1 > 0.5 else "close", pid, f0, f1, obj=F.id)
        return True

    def _do_sit_down(self, pid: str, F: Furniture) -> bool:
        s = self.P[pid]
        s["back"] = (s["x"], s["facing"])
        s["facing"] = -F.side
        f0, f1 = self._transition(pid, F.cx, V.HEAD_Y["sit"], "sit", 0.8, F.id)
        self._act("sit down", pid, f0, f1, obj=F.id)
        return True

    def _do_lie_down(self, pid: str, F: Furniture) -> bool:
        s = self.P[pid]
        s["back"] = (s["x"], s["facing"])
        f0, f1 = self._transition(pid, F.cx, V.HEAD_Y["sit"], "lie", 1.0, F.id)
        s["hy"] = V.HEAD_Y["lie"]
        self._emit(self.cursor)
        self._act("lie down", pid, f0, f1, obj=F.id)
        return True

    def _do_stand_up(self, pid: str) -> bool:
        s = self.P[pid]
        seat = s["seat"]
        x, fc = s["back"]
        if s["pose"] == "lie":
            s["hy"] = V.HEAD_Y["sit"]
        s["pose"] = "trans"
        f0, f1 = self._transition(pid, x, V.HEAD_Y["stand"], "stand", 0.8, None)
        s["facing"] = fc
        s["seat"] = None
        self._emit(self.cursor)
        self._act("stand up", pid, f0, f1, obj=seat)
        return True

    def _do_look(self, pid: str) -> bool:
        s = self.P[pid]
        held = self._held_by(pid)
        cands: list[str] = []
        for F in self.furniture:
            if abs(F.cx - s["x"]) < 140 and F.id != s["seat"]:
                cands.append(F.id)
        for it in self.items:
            sp = self.I[it.id]
            if it.id != held and sp[0] != "in" and abs(self._item_pos(it.id)[0] - s["x"]) < 140:
                cands.append(it.id)
        for q in self.persons:
            if q.id != pid:
                cands.append(q.id)
        if not cands:
            return False
        target = str(self.rng.choice(cands))
        s["gaze"] = target
        self._pause(float(self.rng.uniform(1.2, 2.0)))
        s["gaze"] = None
        return True

    def _target_x(self, target: str) -> float:
        if target in self.P:
            return self.P[target]["x"]
        for F in self.furniture:
            if F.id == target:
                return F.cx
        return self._item_pos(target)[0]


# --- cameras ----------------------------------------------------------------------------------

def _coverage(tl: Timeline, size: tuple[int, int]) -> float:
    """Share of the planned actions whose participants are all in view at their start and end."""
    if not tl.actions:
        return 1.0
    W = size[0]
    ok = 0
    for a in tl.actions:
        good = True
        for fr in (a.f0, a.f1):
            x_left, s = tl.views[tl.shot_of(fr)]
            for e in (a.agent, a.object, a.target):
                if e is not None:
                    bx = _any_box(tl, e, fr)
                    good = good and _fully_in(bx[0], bx[2], x_left, s, W)
        ok += good
    return ok / len(tl.actions)


def _choose_views(tl: Timeline, rng: np.random.Generator, size: tuple[int, int]) -> None:
    """Pick cut frames (in pauses) and one view per shot; cut once more when too much happens off screen."""
    n_cuts = int(rng.choice([0, 1, 2], p=[0.35, 0.4, 0.25]))
    best = None
    for extra in range(3):
        _cuts_and_views(tl, rng, size, min(n_cuts + extra, 3))
        cov = _coverage(tl, size)
        if best is None or cov > best[0] + 0.1:
            best = (cov, list(tl.cuts), list(tl.views))
        if best[0] >= 0.75:
            break
    tl.cuts, tl.views = best[1], best[2]


def _cuts_and_views(tl: Timeline, rng: np.random.Generator, size: tuple[int, int], n_cuts: int) -> None:
    W, H = size
    busy = np.zeros(tl.n, dtype=bool)
    for a in tl.actions:
        busy[a.f0:a.f1 + 1] = True
    for pid in tl.gaze:
        for f, g in enumerate(tl.gaze[pid]):
            if g is not None:
                busy[max(0, f - 1):f + 2] = True
    cuts: list[int] = []
    margin = int(2.0 * tl.fps)
    free = [f for f in range(margin, tl.n - margin) if not busy[f - 2:f + 3].any()]
    for _ in range(n_cuts):
        ok = [f for f in free if all(abs(f - c) > 2.5 * tl.fps for c in cuts)]
        if not ok:
            break
        cuts.append(int(rng.choice(ok)))
    tl.cuts = sorted(cuts)
    s_min = 1.2 * W / 320.0
    s_max = min(1.9 * W / 320.0, H / (V.FLOOR_DEPTH + 78.0))
    bounds = [0] + tl.cuts + [tl.n]
    views: list[tuple[float, float]] = []
    for k in range(len(bounds) - 1):
        a, b = bounds[k], bounds[k + 1]
        f = (a + b) // 2
        acts = [x for x in tl.actions if a <= x.f0 and x.f1 < b]
        xs = [float(tl.px[p.id][f]) for p in tl.persons] + [float(tl.px[x.agent][x.f0]) for x in acts]
        best = None
        for _ in range(60):
            s = float(rng.uniform(s_min, s_max)) if k else float(rng.uniform(s_min, (s_min + s_max) / 2))
            vw = W / s
            centre = float(rng.choice(xs)) + float(rng.uniform(-0.35, 0.35)) * vw
            x_left = round(centre - vw / 2, 2)
            if views:
                px_, ps_ = views[-1]
                if abs(ps_ - s) / ps_ < 0.25 and abs(px_ - x_left) < 0.25 * vw:
                    continue
            if not _clean_edges(tl, x_left, s, W):
                continue
            score = 0.5 * sum(_fully_in(F.x0, F.x1, x_left, s, W) for F in tl.furniture)
            for x in acts:
                ok = True
                for fr in (x.f0, x.f1):
                    for e in (x.agent, x.object, x.target):
                        if e is not None:
                            bx = _any_box(tl, e, fr)
                            ok = ok and _fully_in(bx[0], bx[2], x_left, s, W)
                score += 3.0 * ok
            score += sum(_fully_in(xx - 8, xx + 8, x_left, s, W) for xx in xs[:len(tl.persons)])
            if best is None or score > best[0]:
                best = (score, x_left, s)
        if best is None:
            best = (0, views[-1][0] + 0.5 * W / views[-1][1], views[-1][1]) if views else (0, 0.0, s_min)
        views.append((best[1], round(best[2], 4)))
    tl.views = views


def _any_box(tl: Timeline, e: str, f: int) -> tuple[float, float, float, float]:
    if e in tl.px:
        return person_box(tl, e, f)
    if e in tl.sup:
        return item_box(tl, e, f)
    return furniture_box(_furn(tl, e))


def _fully_in(x0: float, x1: float, x_left: float, s: float, W: int) -> bool:
    return round((x0 - x_left) * s) >= 2 and round((x1 - x_left) * s) <= W - 2


def _clean_edges(tl: Timeline, x_left: float, s: float, W: int) -> bool:
    """No furniture edge lies within a few pixels of the frame border (in or out is clear)."""
    for F in tl.furniture:
        for x in (F.x0, F.x1):
            p = (x - x_left) * s
            if -6 <= p <= 6 or W - 6 <= p <= W + 6:
                return False
    return True


def plan_world(seed: int, *, duration: float, fps: float, size: tuple[int, int]) -> Timeline:
    """The full timeline (layout, actions, cuts, views) of one world video."""
    rng = np.random.default_rng(seed)
    n = max(8, int(round(duration * fps)))
    tl = _Planner(rng, n, fps).plan()
    _choose_views(tl, rng, size)
    return tl
