"""Hand-built and random household scene graphs used by the reasoning and data tests."""

from __future__ import annotations

from stepkit.graph.types import STSG, Action, Attribute, Object, Relation


def kitchen(video_id: str = "kitchen") -> STSG:
    """A man and a woman, a cup, a book, a table, a door and a chair over 20 s."""
    g = STSG(video_id=video_id, fps=10.0, duration=20.0, num_frames=200, video=f"videos/{video_id}.mp4")
    g.objects += [
        Object("p1", "man", attributes=[Attribute("shirt", "blue")]),
        Object("p2", "woman", attributes=[Attribute("shirt", "red")]),
        Object("o1", "cup", attributes=[Attribute("color", "red")]),
        Object("o2", "book", attributes=[Attribute("color", "green")]),
        Object("o3", "table", kind="static", attributes=[Attribute("color", "brown")]),
        Object("o4", "door", kind="static",
               attributes=[Attribute("state", "closed", 0.0, 6.0), Attribute("state", "open", 6.0, 20.0)]),
        Object("o5", "chair", kind="static"),
    ]
    g.relations += [
        Relation("r1", "p1", "holding", "o1", 2.0, 5.0),
        Relation("r2", "o1", "on", "o3", 5.0, 20.0),
        Relation("r3", "o2", "on", "o3", 0.0, 12.0),
        Relation("r4", "p2", "holding", "o2", 12.0, 18.0),
        Relation("r5", "p2", "looking_at", "o4", 6.0, 9.0),
        Relation("r6", "p1", "sitting_on", "o5", 14.0, 20.0),
        Relation("r7", "o5", "next_to", "o3", 0.0, 20.0),
    ]
    g.actions += [
        Action("a1", "p1", "pick up", 1.0, 2.0, object="o1"),
        Action("a2", "p1", "put down", 4.5, 5.0, object="o1", target="o3"),
        Action("a3", "p2", "open", 5.0, 6.0, object="o4"),
        Action("a4", "p1", "walk to", 8.0, 10.0, object="o4"),
        Action("a5", "p2", "pick up", 11.0, 12.0, object="o2"),
        Action("a6", "p1", "sit down", 13.0, 14.0, object="o5"),
        Action("a7", "p2", "give", 17.0, 18.0, object="o2", target="p1"),
    ]
    return g


def random_household(seed: int, video_id: str | None = None) -> STSG:
    """A random but valid household graph: 1-3 people, 4-8 things, timed relations and actions."""
    import random

    rng = random.Random(seed)
    vid = video_id or f"rand{seed}"
    dur = float(rng.randint(20, 40))
    g = STSG(video_id=vid, fps=10.0, duration=dur, num_frames=int(dur * 10), video=f"videos/{vid}.mp4")
    people = [f"p{i}" for i in range(rng.randint(1, 3))]
    for i, p in enumerate(people):
        g.objects.append(Object(p, "person", attributes=[Attribute("shirt", rng.choice(["orange", "pink", "teal"]))]))
    labels = ["cup", "book", "phone", "box", "pillow", "table", "chair", "door", "shelf"]
    things = []
    for i in range(rng.randint(4, 8)):
        lab = rng.choice(labels)
        attrs = [Attribute("color", rng.choice(["red", "blue", "green", "yellow"]))]
        if lab == "door":
            cut = round(rng.uniform(2, dur - 2), 1)
            attrs = [Attribute("state", "closed", 0.0, cut), Attribute("state", "open", cut, dur)]
        g.objects.append(Object(f"o{i}", lab, attributes=attrs))
        things.append(f"o{i}")
    k = 0
    for _ in range(rng.randint(4, 10)):
        s = rng.choice(people + things)
        o = rng.choice([t for t in things if t != s])
        t0 = round(rng.uniform(0, dur - 2), 1)
        t1 = round(rng.uniform(t0 + 0.5, dur), 1)
        pred = rng.choice(["holding", "looking at", "next to"] if s in people else ["on", "next to", "inside"])
        g.relations.append(Relation(f"r{k}", s, pred, o, t0, t1))
        k += 1
    t = 0.0
    for j in range(rng.randint(3, 9)):
        p = rng.choice(people)
        verb = rng.choice(["pick up", "put down", "open", "close", "walk to", "throw", "give", "sit down", "put in"])
        t0 = round(t + rng.uniform(0.2, 2.0), 1)
        t1 = round(t0 + rng.uniform(0.5, 2.0), 1)
        if t1 > dur:
            break
        t = t0
        obj = rng.choice(things)
        target = None
        if verb == "give" and len(people) > 1:
            target = rng.choice([q for q in people if q != p])
        if verb == "put in":
            target = rng.choice([x for x in things if x != obj])
        g.actions.append(Action(f"a{j}", p, verb, t0, t1, object=obj, target=target))
    return g


def shared_labels(video_id: str = "shared") -> STSG:
    """Two people and two cups that share their labels (so references are needed to tell them
    apart), a door that opens, a table, a box and a chair over 30 s, with well separated times."""
    g = STSG(video_id=video_id, fps=10.0, duration=30.0, num_frames=300, video=f"videos/{video_id}.mp4")
    g.objects += [
        Object("p1", "person", attributes=[Attribute("color", "blue")]),
        Object("p2", "person", attributes=[Attribute("color", "red")]),
        Object("c1", "cup", attributes=[Attribute("color", "white"), Attribute("size", "small")]),
        Object("c2", "cup", attributes=[Attribute("color", "green"), Attribute("size", "large")]),
        Object("t1", "table", kind="static", attributes=[Attribute("material", "wood")]),
        Object("d1", "door", kind="static",
               attributes=[Attribute("state", "closed", 0.0, 12.0), Attribute("state", "open", 12.0, 30.0)]),
        Object("b1", "box", attributes=[Attribute("color", "brown")]),
        Object("h1", "chair", kind="static"),
    ]
    g.relations += [
        Relation("r1", "p1", "holding", "c1", 2.0, 6.0),
        Relation("r2", "c1", "on", "t1", 7.0, 30.0),
        Relation("r3", "c2", "on", "t1", 0.0, 15.0),
        Relation("r4", "p2", "holding", "c2", 16.0, 22.0),
        Relation("r5", "p2", "looking at", "d1", 9.0, 13.0),
        Relation("r6", "p1", "sitting on", "h1", 20.0, 30.0),
        Relation("r7", "b1", "on", "t1", 0.0, 30.0),
        Relation("r8", "p1", "holding", "b1", 24.0, 28.0),
    ]
    g.actions += [
        Action("a1", "p1", "pick up", 1.0, 2.0, object="c1"),
        Action("a2", "p1", "put down", 6.0, 7.0, object="c1", target="t1"),
        Action("a3", "p2", "open", 11.0, 12.0, object="d1"),
        Action("a4", "p1", "walk to", 13.5, 15.5, target="d1"),
        Action("a5", "p2", "pick up", 15.0, 16.0, object="c2"),
        Action("a6", "p1", "sit down", 19.0, 20.0, object="h1"),
        Action("a7", "p2", "walk to", 22.5, 24.0, target="t1"),
        Action("a8", "p1", "pick up", 23.0, 24.0, object="b1"),
    ]
    return g
