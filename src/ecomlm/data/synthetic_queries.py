"""Synthetic queries: QueryNER spans and ESCI query–product pairs (see
:mod:`ecomlm.data.synthetic`)."""

from __future__ import annotations

import random

from ecomlm.data.catalog import (
    COLORS,
    CONDITIONS,
    DEPARTMENTS,
    ERAS,
    LINE_SUFFIX,
    LINES,
    MATERIALS,
    MODIFIERS,
    ORIGINS,
    PRICE_LIMITS,
    PRICE_WORDS,
    SHAPES,
    SIZES,
    THEMES,
    TYPE_BY_NAME,
    TYPES,
    Product,
    ProductType,
    World,
    model_number,
    product_bullets,
    product_description,
    product_title,
    titlecase,
    type_name,
)
from ecomlm.tasks.esci import ESCI_LABELS, EsciExample
from ecomlm.tasks.queryner import NerExample

ESCI_PRIORS = (0.60, 0.20, 0.05, 0.15)  # Exact, Substitute, Complement, Irrelevant


# ----------------------------------------------------------------------------- queries

Span = tuple[str, str | None]  # (text, entity type or None for O)

_CONFUSABLE = {
    "color": "material", "material": "color", "UoM": "shape", "shape": "UoM",
    "department": "modifier", "modifier": "core_product_type", "creator": "content",
    "content": "creator", "occasion": "time", "time": "occasion", "condition": "time",
    "price": "modifier", "product_name": "creator", "quantity": "UoM", "origin": "modifier",
    "product_number": "product_name", "core_product_type": "modifier",
}  # fmt: skip


def _price_phrase(p: Product, rng: random.Random) -> str:
    limits = [x for x in PRICE_LIMITS if x > p.price]
    if limits and rng.random() < 0.7:
        lim = limits[0] if rng.random() < 0.7 else rng.choice(limits)
        return rng.choice((f"under {lim} dollars", f"under ${lim}", f"under {lim}",
                           f"less than {lim} dollars"))  # fmt: skip
    return rng.choice(PRICE_WORDS)


def _quantity_phrase(n: int, rng: random.Random) -> str:
    if n == 1:
        return rng.choice(("single", "1 pack", "1"))
    return rng.choice((f"{n} pack", f"set of {n}", f"pack of {n}", f"{n} count", f"{n}pk",
                       "bulk" if n >= 6 else f"{n} pcs"))  # fmt: skip


def query_slots(p: Product, rng: random.Random) -> dict[str, Span]:
    """Pick which of the product's attributes a shopper mentions, as (text, type) spans."""
    s: dict[str, Span] = {}

    def maybe(key: str, prob: float, text: str, etype: str) -> None:
        if text and rng.random() < prob:
            s[key] = (text, etype)

    maybe("brand", 0.45, p.brand, "creator")
    maybe("line", 0.55 if p.line else 0, p.line, "product_name")
    maybe("color", 0.3, p.color, "color")
    maybe("material", 0.2, p.material, "material")
    maybe("size", 0.3, p.size, "UoM")
    if p.pack > 1:
        maybe("pack", 0.5, _quantity_phrase(p.pack, rng), "quantity")
    if p.department:
        maybe("department", 0.55, rng.choice(DEPARTMENTS[p.department]), "department")
    maybe("occasion", 0.4, p.occasion, "occasion")
    maybe("origin", 0.5, p.origin, "origin")
    if p.condition != "new":
        maybe("condition", 0.6, p.condition, "condition")
    elif rng.random() < 0.02:
        s["condition"] = ("new", "condition")
    maybe("shape", 0.4, p.shape, "shape")
    maybe("content", 0.7, p.content, "content")
    if p.model:
        maybe(
            "model", 0.25, p.model if rng.random() < 0.8 else f"model {p.model}", "product_number"
        )
    maybe("era", 0.35, p.era, "time")
    if p.features and rng.random() < 0.45:
        s["feature"] = (rng.choice(p.features), "modifier")
    if rng.random() < 0.06:
        s["price"] = (_price_phrase(p, rng), "price")
    if rng.random() < 0.93 or len(s) < 2:
        s["type"] = (type_name(p, rng), "core_product_type")
    return s


_ORDER = ("condition", "price", "pack", "department", "brand", "line", "content", "origin", "era",
          "color", "material", "shape", "feature", "type", "size", "model", "occasion")  # fmt: skip


def render_query(slots: dict[str, Span], rng: random.Random, noise: float = 0.05) -> list[Span]:
    """Order the spans like real queries (with local shuffles) and sprinkle O words."""
    keys = [k for k in _ORDER if k in slots]
    for i in range(len(keys) - 1):  # local reorderings
        if rng.random() < 0.15:
            keys[i], keys[i + 1] = keys[i + 1], keys[i]
    spans = [slots[k] for k in keys]
    # "for women", "for christmas" style: a trailing department/occasion after the type
    for key in ("department", "occasion"):
        if key in slots and "type" in slots and rng.random() < 0.35:
            spans.remove(slots[key])
            text, etype = slots[key]
            if key == "occasion" and not text.startswith("for "):
                spans.append(("for", None))
            spans.append((text, etype))
    if rng.random() < 0.08:
        spans.insert(rng.randrange(len(spans) + 1), (rng.choice(("best", "the", "top")), None))
    if len(spans) > 2 and rng.random() < 0.05:
        spans.insert(rng.randrange(1, len(spans)), (rng.choice(("and", "with", "-")), None))
    out = []
    for text, etype in spans:
        if etype and rng.random() < noise:  # annotation noise: a confusable type
            etype = _CONFUSABLE.get(etype, etype)
        out.append((text, etype))
    return out


def spans_to_bio(spans: list[Span]) -> tuple[list[str], list[str]]:
    tokens, tags = [], []
    for text, etype in spans:
        for i, tok in enumerate(text.split()):
            tokens.append(tok)
            tags.append("O" if etype is None else f"{'B' if i == 0 else 'I'}-{etype}")
    return tokens, tags


# ----------------------------------------------------------------------------- esci pairs

_SUB_ATTRS = ("brand", "line", "color", "material", "size", "pack", "department", "content",
              "shape", "origin", "era", "model", "feature", "condition", "price")  # fmt: skip


def _variant(world: World, rng: random.Random, p: Product, keep: dict[str, Span]) -> Product:
    """Another product of the same type matching every attribute in ``keep``."""
    q = world.product(rng, p.type, brand=p.brand if "brand" in keep else None)
    for key in keep:
        if key == "feature":
            q.features = list(dict.fromkeys([keep[key][0]] + q.features))
        elif key == "pack":
            q.pack = p.pack
        elif key == "line":
            q.line, q.model = p.line, p.model if "model" in keep else q.model
        elif key == "era":
            q.era = p.era
        elif key == "model":
            q.model = p.model
        elif key == "price":
            q.price = min(q.price, p.price)
        elif key != "type":
            setattr(q, key, getattr(p, key))
    return q


def _differ(world: World, rng: random.Random, q: Product, key: str, asked: str = "") -> None:
    """Change one attribute of ``q`` to a different value (in place)."""
    t = q.type
    if key == "brand":
        q.brand = rng.choice([b for b in world.brands_by_family[t.family] if b != q.brand])
    elif key == "line":
        q.line = f"{rng.choice(LINES)} {rng.choice(LINE_SUFFIX)}"
    elif key == "color":
        q.color = rng.choice([c for c in COLORS if c != q.color])
    elif key == "material":
        q.material = rng.choice([m for m in MATERIALS[t.material] if m != q.material])
    elif key == "size" and len(SIZES[t.size]) > 1:
        q.size = rng.choice([x for x in SIZES[t.size] if x != q.size])
    elif key == "pack":
        q.pack = rng.choice([n for n in (1, 2, 3, 4, 6, 10) if n != q.pack])
    elif key == "department":
        q.department = rng.choice([d for d in DEPARTMENTS if d != q.department])
    elif key == "content":
        pool = world.artists if t.content == "artist" else THEMES
        q.content = rng.choice([c for c in pool if c != q.content])
    elif key == "shape":
        pool = SHAPES["apparel" if t.size == "apparel" else "generic"]
        q.shape = rng.choice([x for x in pool if x != q.shape])
    elif key == "origin":
        q.origin = rng.choice([o for o in ORIGINS if o != q.origin])
    elif key == "era":
        q.era = rng.choice([e for e in ERAS["tech"] + ERAS["style"] if e != q.era])
    elif key == "model":
        q.model = model_number(rng)
    elif key == "feature":
        mods = MODIFIERS.get(t.kind) or MODIFIERS["sports"]
        q.features = [f for f in q.features if f != asked] or [
            rng.choice([m for m in mods if m != asked])
        ]
    elif key == "condition":
        q.condition = "new" if q.condition != "new" else rng.choice(CONDITIONS[:4])
    elif key == "price":
        q.price = round(q.price * 3 + 20, 2)


def _siblings(t: ProductType) -> list[ProductType]:
    return [u for u in TYPES if u.family == t.family and u.name != t.name]


def esci_product_for(
    world: World, rng: random.Random, target: Product, slots: dict[str, Span], label: str
) -> tuple[Product, frozenset[str]]:
    """A product that stands in relation ``label`` to a query built from ``target``."""
    hide: set[str] = set()
    if label == "Exact":
        q = target if rng.random() < 0.35 else _variant(world, rng, target, slots)
        if rng.random() < 0.25:  # the matching attribute sits in another field only
            hide.add(rng.choice(("color", "material", "size", "department", "pack")))
    elif label == "Substitute":
        asked = [k for k in slots if k in _SUB_ATTRS]
        sibs = _siblings(target.type)
        if sibs and (not asked or rng.random() < 0.3):
            base = _variant(world, rng, target, {k: v for k, v in slots.items() if k != "type"})
            q = world.product(rng, rng.choice(sibs), brand=base.brand)
            for attr in ("color", "department", "content", "occasion", "size"):
                if attr in slots and getattr(base, attr):
                    setattr(q, attr, getattr(base, attr))
        else:
            q = _variant(world, rng, target, slots)
            key = rng.choice(asked) if asked else "color"
            _differ(world, rng, q, key, slots.get(key, ("", None))[0])
            if rng.random() < 0.25:  # the mismatch is visible only outside the title
                hide.add(key)
    elif label == "Complement":
        names = [c for c in target.type.complements if c in TYPE_BY_NAME]
        ctype = TYPE_BY_NAME[rng.choice(names)] if names else rng.choice(TYPES)
        q = world.product(rng, ctype, brand=target.brand if rng.random() < 0.4 else None)
        if target.line and rng.random() < 0.6:
            q.line = target.line
        if "color" in slots and rng.random() < 0.4:
            q.color = target.color
    else:  # Irrelevant: another family; often shares a surface word with the query
        related = {target.type.family} | {
            TYPE_BY_NAME[c].family for c in target.type.complements if c in TYPE_BY_NAME
        }
        others = [t for t in TYPES if t.family not in related]
        q = world.product(rng, rng.choice(others))
        r = rng.random()
        if "brand" in slots and r < 0.35:
            q.brand = target.brand
        elif r < 0.6 and "color" in slots:
            q.color = target.color
        elif r < 0.75 and "department" in slots:
            q.department = target.department
        if "feature" in slots and rng.random() < 0.3:
            q.features = [slots["feature"][0]] + q.features[1:]
    return q, frozenset(hide)


def esci_examples(world: World, rng: random.Random, n: int, noise: float) -> list[EsciExample]:
    out: list[EsciExample] = []
    qid = 0
    while len(out) < n:
        target = world.product(rng, rng.choice(TYPES))
        slots = query_slots(target, rng)
        spans = render_query(slots, rng, noise=0.0)
        query = " ".join(text for text, _ in spans)
        qid += 1
        for _ in range(rng.choice((1, 2, 3, 4, 5))):
            label = rng.choices(ESCI_LABELS, ESCI_PRIORS)[0]
            prod, hide = esci_product_for(world, rng, target, slots, label)
            if rng.random() < noise:  # annotator disagreement
                label = rng.choices(ESCI_LABELS, (0.35, 0.35, 0.1, 0.2))[0]
            bullets = product_bullets(prod, rng)
            out.append(
                EsciExample(
                    query=query,
                    product_title=product_title(prod, rng, hide),
                    label=label,
                    product_brand=titlecase(prod.brand),
                    product_color=titlecase(prod.color),
                    product_bullets="\n".join(bullets),
                    product_description=product_description(prod, rng)
                    if rng.random() < 0.7
                    else "",
                    query_id=f"syn-q{world.seed}-{qid}",
                    product_id=prod.id,
                    example_id=f"syn-esci-{world.seed}-{len(out)}",
                )
            )
    return out


# ----------------------------------------------------------------------------- ner


def ner_examples(world: World, rng: random.Random, n: int, noise: float) -> list[NerExample]:
    out = []
    for i in range(n):
        target = world.product(rng, rng.choice(TYPES))
        tokens, tags = spans_to_bio(render_query(query_slots(target, rng), rng, noise=noise))
        out.append(NerExample(tokens=tokens, tags=tags, id=f"syn-ner-{world.seed}-{i}"))
    return out
