"""The synthetic product world: products, brands, and product rendering.

Used by :mod:`ecomlm.data.synthetic`. Every random choice goes through a caller's
``random.Random``, so a seed fixes everything. The vocabulary lives in
:mod:`ecomlm.data.catalog_vocab` and the product types in :mod:`ecomlm.data.catalog_types`;
both are re-exported here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ecomlm.data.catalog_types import TYPE_BY_NAME, TYPES, ProductType
from ecomlm.data.catalog_vocab import (
    AMBIGUOUS_BRANDS,
    BRAND_A,
    BRAND_B,
    BRAND_C,
    COLORS,
    CONDITIONS,
    DEPARTMENT_TITLE,
    DEPARTMENTS,
    ERAS,
    FIRST,
    LAST,
    LINE_SUFFIX,
    LINES,
    MATERIALS,
    MODIFIERS,
    OCCASIONS,
    ORIGIN_TITLE,
    ORIGINS,
    PRICE_LIMITS,
    PRICE_WORDS,
    SHAPES,
    SIZES,
    THEMES,
)

__all__ = [
    "AMBIGUOUS_BRANDS",
    "BRAND_A",
    "BRAND_B",
    "BRAND_C",
    "COLORS",
    "CONDITIONS",
    "DEPARTMENTS",
    "DEPARTMENT_TITLE",
    "ERAS",
    "FIRST",
    "LAST",
    "LINES",
    "LINE_SUFFIX",
    "MATERIALS",
    "MODIFIERS",
    "OCCASIONS",
    "ORIGINS",
    "ORIGIN_TITLE",
    "PRICE_LIMITS",
    "PRICE_WORDS",
    "Product",
    "ProductType",
    "SHAPES",
    "SIZES",
    "THEMES",
    "TYPES",
    "TYPE_BY_NAME",
    "World",
    "model_number",
    "product_bullets",
    "product_description",
    "product_title",
    "titlecase",
    "type_name",
]

_KIND_GROUP = {"electronics": "gear", "gear": "gear", "kitchen": "gear", "sports": "gear",
               "toys": "gear", "pet": "gear", "beauty": "gear", "media": "gear",
               "apparel": "apparel", "shoe": "apparel", "home": "home"}  # fmt: skip


@dataclass
class Product:
    id: str
    type: ProductType
    brand: str
    color: str = ""
    material: str = ""
    size: str = ""
    pack: int = 1
    department: str = ""  # key of DEPARTMENTS
    occasion: str = ""
    origin: str = ""
    condition: str = "new"
    shape: str = ""
    content: str = ""
    line: str = ""  # product_name
    model: str = ""  # product_number
    era: str = ""  # time
    price: float = 0.0
    features: list[str] = field(default_factory=list)  # modifiers


# ----------------------------------------------------------------------------- catalog


class World:
    """Brands, creators and product factory for one seed."""

    def __init__(self, seed: int = 0):
        rng = random.Random(f"ecomlm-synthetic-world-{seed}")
        names = sorted({a + b for a in BRAND_A for b in BRAND_B})
        rng.shuffle(names)
        self.brands = [
            n if rng.random() < 0.8 else f"{n} {rng.choice(BRAND_C)}" for n in names[:400]
        ] + AMBIGUOUS_BRANDS
        families = sorted({t.family for t in TYPES})
        # each brand serves 1-3 families, so brand words are shared across product types
        self.brands_by_family: dict[str, list[str]] = {f: [] for f in families}
        for b in self.brands:
            for f in rng.sample(families, rng.choice((1, 2, 2, 3))):
                self.brands_by_family[f].append(b)
        for f in families:
            if len(self.brands_by_family[f]) < 4:
                self.brands_by_family[f] += rng.sample(self.brands, 4)
        self.artists = sorted({f"{a} {b}" for a in FIRST for b in LAST})
        self._n = 0
        self.seed = seed

    def new_id(self, rng: random.Random) -> str:
        self._n += 1
        return f"S{self.seed:02d}{rng.randrange(16**6):06X}{self._n:05d}"

    def product(self, rng: random.Random, ptype: ProductType, brand: str | None = None) -> Product:
        """A random product of one type, with the attributes that type can have."""
        group = _KIND_GROUP.get(ptype.kind, "gear")
        mods = MODIFIERS.get(ptype.kind) or MODIFIERS.get(
            {"gear": "sports", "home": "home"}.get(ptype.kind, "sports")
        )
        p = Product(
            id=self.new_id(rng),
            type=ptype,
            brand=brand or rng.choice(self.brands_by_family[ptype.family]),
            color=rng.choice(COLORS),
            material=rng.choice(MATERIALS[ptype.material]),
            size=rng.choice(SIZES[ptype.size]) if SIZES[ptype.size] else "",
            pack=rng.choices((1, 2, 3, 4, 6, 10, 12), (50, 12, 6, 8, 5, 4, 3))[0],
            department=rng.choice(list(DEPARTMENTS)) if ptype.dept else "",
            occasion=rng.choice(OCCASIONS[group]) if rng.random() < 0.35 else "",
            origin=rng.choice(ORIGINS) if rng.random() < 0.15 else "",
            condition=rng.choice(CONDITIONS) if rng.random() < 0.12 else "new",
            shape=rng.choice(SHAPES["apparel" if ptype.size == "apparel" else "generic"])
            if rng.random() < 0.3
            else "",
            features=rng.sample(mods, rng.choice((1, 2, 2, 3))),
        )
        if ptype.content == "artist":
            p.content = rng.choice(self.artists)
        elif ptype.content == "theme" and rng.random() < 0.5:
            p.content = rng.choice(THEMES)
        if ptype.line:
            p.line = f"{rng.choice(LINES)} {rng.choice(LINE_SUFFIX)}"
            p.model = model_number(rng)
        elif rng.random() < 0.15:
            p.model = model_number(rng)
        if ptype.kind == "electronics":
            p.era = rng.choice(ERAS["tech"]) if rng.random() < 0.4 else ""
        elif rng.random() < 0.2:
            p.era = rng.choice(ERAS["style"])
        p.price = round(rng.lognormvariate(3.2, 0.9) + 0.99, 2)
        return p


def model_number(rng: random.Random) -> str:
    letters = "abcdefghjkmnprstvwxyz"
    style = rng.randrange(4)
    if style == 0:
        return f"{rng.choice(letters)}{rng.randrange(100, 999)}"
    if style == 1:
        return f"{rng.choice(letters)}{rng.choice(letters)}{rng.randrange(100, 9999)}"
    if style == 2:
        a, b, c = rng.choice(letters), rng.choice(letters), rng.choice(letters)
        return f"{a}{b}-{c}{rng.randrange(10, 999)}"
    return f"{rng.choice(letters)}{rng.randrange(10, 99)}{rng.choice(letters)}{rng.randrange(1, 9)}"


def titlecase(s: str) -> str:
    return " ".join(w[:1].upper() + w[1:] if not any(c.isdigit() for c in w) else w.upper()
                    for w in s.split())  # fmt: skip


def type_name(p: Product, rng: random.Random) -> str:
    """The type's name or, sometimes, one of its synonyms."""
    if p.type.synonyms and rng.random() < 0.3:
        return rng.choice(p.type.synonyms)
    return p.type.name


def product_title(p: Product, rng: random.Random, hide: frozenset[str] = frozenset()) -> str:
    """A marketplace-style title; attributes in ``hide`` are left to other fields."""
    parts: list[str] = [titlecase(p.brand)]
    if p.line and "line" not in hide:
        parts.append(titlecase(p.line))
    if p.content and "content" not in hide:
        parts.append(titlecase(p.content))
    if p.department and "department" not in hide and rng.random() < 0.8:
        parts.append(DEPARTMENT_TITLE[p.department])
    pre = []
    if p.features and rng.random() < 0.7:
        pre.append(p.features[0])
    if p.material and "material" not in hide and rng.random() < 0.6:
        pre.append(p.material)
    if p.shape and "shape" not in hide:
        pre.append(p.shape)
    rng.shuffle(pre)
    parts += [titlecase(x) for x in pre]
    parts.append(titlecase(type_name(p, rng)))
    tail = []
    if len(p.features) > 1 and rng.random() < 0.5:
        tail.append(titlecase(p.features[1]))
    if p.occasion and rng.random() < 0.5:
        tail.append(f"for {titlecase(p.occasion)}")
    if p.size and "size" not in hide:
        tail.append(titlecase(p.size))
    if p.color and "color" not in hide and rng.random() < 0.75:
        tail.append(titlecase(p.color))
    if p.pack > 1 and "pack" not in hide:
        tail.append(rng.choice((f"{p.pack} Pack", f"(Pack of {p.pack})", f"Set of {p.pack}")))
    if p.model and "model" not in hide and rng.random() < 0.6:
        tail.append(p.model.upper())
    if p.era and "era" not in hide and rng.random() < 0.6:
        tail.append(f"{titlecase(p.era)} Edition" if p.era[0].isdigit() else titlecase(p.era))
    if p.condition != "new" and "condition" not in hide:
        tail.append(f"({titlecase(p.condition)})")
    title = " ".join(parts)
    if tail:
        title += rng.choice((", ", " - ", " | ")) + ", ".join(tail)
    return title


def product_bullets(p: Product, rng: random.Random) -> list[str]:
    t = p.type.name
    out = []
    if p.material:
        out.append(rng.choice((
            f"PREMIUM MATERIAL: made of {p.material} for everyday use",
            f"Crafted from durable {p.material}",
            f"{titlecase(p.material)} construction that lasts",
        )))  # fmt: skip
    for f in p.features:
        out.append(rng.choice((
            f"{f.upper()}: designed to be {f}",
            f"{titlecase(f)} design you will appreciate",
            f"Features a {f} build",
        )))  # fmt: skip
    if p.size:
        out.append(rng.choice((f"SIZE: {p.size}", f"Measures {p.size}", f"Available in {p.size}")))
    if p.occasion:
        out.append(rng.choice((f"Perfect for {p.occasion}", f"Great gift for {p.occasion}")))
    if p.origin:
        out.append(f"Made in {ORIGIN_TITLE.get(p.origin, p.origin.title())}")
    if p.pack > 1:
        out.append(f"WHAT YOU GET: {p.pack} x {t}")
    if p.line:
        out.append(f"Compatible with the {titlecase(p.line)} series")
    rng.shuffle(out)
    return out


def product_description(p: Product, rng: random.Random) -> str:
    """A description built from the attributes with varied sentence templates."""
    t, brand = p.type.name, titlecase(p.brand)
    dept = {"women": "women", "men": "men", "kids": "kids", "girls": "girls", "boys": "boys",
            "baby": "little ones", "unisex": "everyone"}.get(p.department, "")  # fmt: skip
    color = f"{p.color} " if p.color else ""
    openers = [
        f"The {brand} {t} brings {p.features[0]} performance to your day.",
        f"Meet the {color}{t} from {brand}.",
        f"{brand} designed this {color}{t} with {p.features[0]} details in mind.",
        f"Looking for a reliable {t}? This {color}{t} by {brand} is a great pick.",
        f"Upgrade to the {brand} {t}, a {p.features[0]} choice.",
    ]
    sents = [rng.choice(openers)]
    if p.material:
        sents.append(rng.choice((
            f"It is made of {p.material}, so it holds up to daily use.",
            f"The {p.material} build feels solid and looks good.",
            f"Quality {p.material} gives it a premium feel.",
        )))  # fmt: skip
    if len(p.features) > 1:
        sents.append(f"It is also {' and '.join(p.features[1:])}.")
    if dept:
        sents.append(rng.choice((f"Made for {dept}.", f"A great fit for {dept}.")))
    if p.color and rng.random() < 0.6:
        sents.append(rng.choice((
            f"The {p.color} finish matches any style.",
            f"This listing is for the {p.color} color.",
        )))  # fmt: skip
    if p.size:
        sents.append(rng.choice((f"Size: {p.size}.", f"It comes in {p.size}.")))
    if p.occasion:
        sents.append(rng.choice((
            f"Ideal for {p.occasion}.", f"A perfect choice for {p.occasion}.",
            f"Makes a thoughtful gift for {p.occasion}.",
        )))  # fmt: skip
    if p.origin:
        sents.append(f"Made in {ORIGIN_TITLE.get(p.origin, p.origin.title())}.")
    if p.pack > 1:
        sents.append(rng.choice((f"You get {p.pack} in one pack.", f"Includes {p.pack} pieces.")))
    sents.append(rng.choice((
        f"Backed by the {brand} satisfaction guarantee.",
        "Order now and enjoy it for years to come.",
        "Easy to use and easy to love.",
        "",
    )))  # fmt: skip
    return " ".join(s for s in sents if s)
