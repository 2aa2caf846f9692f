"""Synthetic texts: product reviews with reference summaries, and product descriptions
(see :mod:`ecomlm.data.synthetic`)."""

from __future__ import annotations

import random

from ecomlm.data.catalog import (
    TYPES,
    Product,
    World,
    product_bullets,
    product_description,
    product_title,
    titlecase,
)
from ecomlm.tasks.desc_gen import DescGenExample
from ecomlm.tasks.review_summ import ReviewSummExample

# ----------------------------------------------------------------------------- reviews

_POS = ("the {a} {is} great", "love the {a}", "the {a} exceeded my expectations",
        "really happy with the {a}", "{a} {is} excellent", "no complaints about the {a}",
        "the {a} {is} perfect")  # fmt: skip
_NEG = ("the {a} {is} disappointing", "the {a} could be better", "had problems with the {a}",
        "not impressed by the {a}", "the {a} {is} poor", "{a} {was} a letdown")  # fmt: skip


def _plural(aspect: str) -> bool:
    return aspect.endswith("s") and not aspect.endswith(("ss", "ness", "sis"))


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_OPEN = ("I bought this {t} for my {who}.", "Ordered this {t} last month.",
         "This is my second {t} from {b}.", "Got this {t} as a gift.",
         "I needed a new {t} and picked this one.", "")  # fmt: skip
_WHO = ("wife", "husband", "son", "daughter", "mom", "dad", "friend", "office", "trip")
_CLOSE = {
    5: ("Highly recommend!", "Would buy again.", "Five stars.", "Worth every penny."),
    4: ("Overall a good buy.", "Pretty happy with it.", "Would recommend."),
    3: ("It's okay for the price.", "Mixed feelings.", "Not bad, not great."),
    2: ("Probably will return it.", "Expected more.", "Would not buy again."),
    1: ("Returned it.", "Save your money.", "Very disappointed."),
}


def _review(
    p: Product, rng: random.Random, opinions: dict[str, bool]
) -> tuple[str, float, dict[str, bool]]:
    t = p.type.name
    aspects = rng.sample(list(opinions), min(len(opinions), rng.choice((1, 2, 2, 3))))
    said = {a: opinions[a] if rng.random() > 0.12 else not opinions[a] for a in aspects}
    pos = sum(said.values()) / len(said)
    rating = 1 + 4 * pos + rng.gauss(0, 0.7)
    rating = float(min(5, max(1, round(rating))))
    parts = [rng.choice(_OPEN).format(t=t, who=rng.choice(_WHO), b=titlecase(p.brand))]
    clauses = [
        rng.choice(_POS if v else _NEG).format(
            a=a, **({"is": "are", "was": "were"} if _plural(a) else {"is": "is", "was": "was"})
        )
        for a, v in said.items()
    ]
    joined = clauses[0][:1].upper() + clauses[0][1:]
    for c in clauses[1:]:
        sep = rng.choice((" and ", ", ", "; ", ". "))
        joined += sep + (c[:1].upper() + c[1:] if sep == ". " else c)
    parts.append(joined + ".")
    parts.append(rng.choice(_CLOSE[int(rating)]))
    return " ".join(x for x in parts if x), rating, said


def _summaries(p: Product, rng: random.Random, votes: dict[str, list[bool]], mean: float) -> list:
    t = p.type.name
    ranked = sorted(votes, key=lambda a: (-len(votes[a]), a))
    good = [a for a in ranked if sum(votes[a]) * 2 > len(votes[a])][:3]
    bad = [a for a in ranked if sum(votes[a]) * 2 < len(votes[a])][:2]
    overall = "positive" if mean >= 3.75 else "negative" if mean < 2.75 else "mixed"
    refs = []
    for style in range(3):
        s = []
        if overall == "positive":
            s.append(rng.choice((f"Customers love this {t}.", f"This {t} is a great buy.",
                                 f"A well-liked {t} that most buyers recommend.")))  # fmt: skip
        elif overall == "negative":
            s.append(rng.choice((f"Most buyers are disappointed with this {t}.",
                                 f"This {t} does not live up to expectations.")))  # fmt: skip
        else:
            s.append(rng.choice((f"Opinions on this {t} are mixed.",
                                 f"This {t} is an average product.")))  # fmt: skip
        if good:
            g = _and(good) if style != 1 else ", ".join(good)
            s.append(rng.choice((f"Reviewers praise the {g}.", f"The {g} stand out.",
                                 f"People like the {g}.")))  # fmt: skip
        if bad:
            b = _and(bad)
            weak = "are weak points" if len(bad) > 1 or _plural(b) else "is a weak point"
            s.append(rng.choice((f"However, the {b} could be better.",
                                 f"Some complain about the {b}.",
                                 f"The {b} {weak}.")))  # fmt: skip
        if style == 2:
            s.append({"positive": "Recommended.", "mixed": "Consider alternatives.",
                      "negative": "Not recommended."}[overall])  # fmt: skip
        refs.append(" ".join(s))
    return refs


def review_examples(
    world: World, rng: random.Random, n: int, noise: float, n_reviews: int = 8
) -> list[ReviewSummExample]:
    out = []
    for i in range(n):
        p = world.product(rng, rng.choice(TYPES))
        aspects = list(p.type.aspects) + ["price", "quality", "shipping"]
        chosen = rng.sample(aspects, min(len(aspects), rng.choice((3, 4, 4, 5))))
        quality = rng.choices((0.85, 0.55, 0.2), (0.6, 0.25, 0.15))[0]
        opinions = {a: rng.random() < quality for a in chosen}
        reviews, ratings, votes = [], [], {a: [] for a in chosen}
        for _ in range(n_reviews):
            text, rating, said = _review(p, rng, opinions)
            reviews.append(text)
            ratings.append(rating)
            for a, v in said.items():
                votes[a].append(v)
        votes = {a: v for a, v in votes.items() if v}
        mean = sum(ratings) / len(ratings)
        out.append(
            ReviewSummExample(
                reviews=reviews,
                summaries=_summaries(p, rng, votes, mean),
                product_title=product_title(p, rng),
                category=p.type.category,
                ratings=ratings,
                id=f"syn-rev-{world.seed}-{i}",
            )
        )
    return out


# ----------------------------------------------------------------------------- desc gen


def desc_examples(world: World, rng: random.Random, n: int, noise: float) -> list[DescGenExample]:
    out = []
    for _ in range(n):
        p = world.product(rng, rng.choice(TYPES))
        out.append(
            DescGenExample(
                title=product_title(p, rng),
                brand=titlecase(p.brand),
                color=titlecase(p.color),
                bullets=product_bullets(p, rng),
                category=f"{p.type.category} > {p.type.family.title()}",
                description=product_description(p, rng),
                id=p.id,
            )
        )
    return out
