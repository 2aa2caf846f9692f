"""The synthetic product world: vocabulary, product types, brands, and product rendering.

Used by :mod:`ecomlm.data.synthetic`. Every random choice goes through a caller's
``random.Random``, so a seed fixes everything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# ----------------------------------------------------------------------------- vocabulary

SIZES = {
    "apparel": ["small", "medium", "large", "x-large", "xx-large", "plus size", "3t", "size 8"],
    "shoe": ["size 7", "size 8", "size 9", "size 10", "size 11", "size 12", "wide width"],
    "bed": ["twin", "full", "queen", "king", "queen size", "king size", "twin xl"],
    "length": ["8 inch", "12 inch", "18 inch", "24 inch", "6 ft", "10 ft", "5x7", "8x10"],
    "volume": ["12 oz", "16 oz", "32 oz", "1 liter", "500 ml", "64 oz", "8 oz"],
    "weight": ["5 lb", "10 lb", "20 lb", "2 kg", "25 lbs", "40 lb"],
    "storage": ["64gb", "128gb", "256gb", "512gb", "1tb"],
    "screen": ["10 inch", "13 inch", "15.6 inch", "17 inch", "43 inch", "55 inch", "65 inch"],
    "none": [],
}
MATERIALS = {
    "apparel": ["cotton", "polyester", "linen", "wool", "denim", "silk", "fleece", "cashmere"],
    "shoe": ["leather", "suede", "mesh", "canvas", "rubber", "faux leather"],
    "jewelry": ["gold", "silver", "sterling silver", "rose gold", "stainless steel", "titanium"],
    "textile": ["cotton", "linen", "microfiber", "bamboo", "silk", "velvet", "jute"],
    "kitchen": ["stainless steel", "cast iron", "ceramic", "glass", "plastic", "copper", "wood"],
    "electronics": ["aluminum", "plastic", "glass", "metal", "carbon fiber"],
    "gear": ["plastic", "metal", "silicone", "wood", "nylon", "leather", "rubber", "gold"],
    "paper": ["paper", "cardboard", "vinyl", "canvas", "wood"],
}
COLORS = [
    "black", "white", "red", "blue", "navy blue", "green", "olive green", "pink", "rose gold",
    "gold", "silver", "gray", "beige", "brown", "purple", "yellow", "orange", "teal",
    "burgundy", "clear", "multicolor", "ivory", "charcoal", "light blue", "copper",
]  # fmt: skip
MODIFIERS = {
    "electronics": ["wireless", "bluetooth", "waterproof", "portable", "rechargeable",
                    "noise cancelling", "usb c", "fast charging", "magnetic", "led", "gaming"],
    "apparel": ["stretch", "slim fit", "warm", "lightweight", "breathable", "with pockets",
                "oversized", "cute", "casual", "moisture wicking"],
    "shoe": ["non slip", "lightweight", "waterproof", "breathable", "memory foam", "wide"],
    "home": ["blackout", "washable", "hypoallergenic", "soft", "decorative", "cooling",
             "machine washable", "outdoor", "indoor"],
    "kitchen": ["nonstick", "dishwasher safe", "insulated", "bpa free", "programmable",
                "leak proof", "heavy duty", "kitchen"],
    "beauty": ["organic", "sulfate free", "long lasting", "sensitive", "whitening",
               "fragrance free", "matte", "travel size"],
    "pet": ["dog", "cat", "adjustable", "reflective", "clumping", "orthopedic", "chew proof"],
    "sports": ["adjustable", "non slip", "extra thick", "lightweight", "outdoor", "foldable"],
    "toys": ["educational", "interactive", "cute", "magnetic", "remote control",
             "glow in the dark"],
    "media": ["signed", "limited edition", "deluxe", "hardcover", "paperback", "framed"],
}  # fmt: skip
SHAPES = {
    "apparel": ["long sleeve", "short sleeve", "high waisted", "sleeveless", "v neck", "crew neck"],
    "generic": ["round", "square", "oval", "rectangular", "mini", "big", "thin", "heart shaped",
                "long", "short"],
}  # fmt: skip
OCCASIONS = {
    "apparel": ["wedding", "party", "beach", "gym", "winter", "summer", "christmas", "halloween",
                "work", "graduation"],
    "home": ["living room", "bedroom", "bathroom", "christmas", "halloween", "nursery", "dorm"],
    "gear": ["travel", "camping", "office", "gaming", "school", "birthday", "christmas", "hiking"],
}  # fmt: skip
DEPARTMENTS = {
    "women": ["womens", "women", "for women", "women's", "ladies"],
    "men": ["mens", "men", "for men", "men's"],
    "kids": ["kids", "for kids", "children", "youth"],
    "girls": ["girls", "for girls", "girl"],
    "boys": ["boys", "for boys", "boy"],
    "baby": ["baby", "toddler", "infant", "for baby"],
    "unisex": ["unisex", "adult"],
}
DEPARTMENT_TITLE = {"women": "Women's", "men": "Men's", "kids": "Kids'", "girls": "Girls'",
                    "boys": "Boys'", "baby": "Baby", "unisex": "Unisex"}  # fmt: skip
ORIGINS = ["japanese", "german", "italian", "french", "mexican", "usa", "made in usa", "korean",
           "indian", "turkish", "english", "thai", "peruvian", "swedish"]  # fmt: skip
ORIGIN_TITLE = {"usa": "USA", "made in usa": "Made in USA"}
CONDITIONS = ["used", "refurbished", "renewed", "vintage", "open box", "original", "new"]
ERAS = {
    "tech": ["2019", "2020", "2021", "2022", "2023", "2024", "latest"],
    "style": ["90s", "80s", "70s", "y2k", "retro", "modern", "mid century", "victorian"],
}
PRICE_LIMITS = [10, 15, 20, 25, 30, 50, 100, 200, 500]
PRICE_WORDS = ["cheap", "clearance", "on sale", "for sale", "discount", "affordable"]
THEMES = ["star wars", "pokemon", "frozen", "mickey mouse", "marvel", "batman", "spiderman",
          "harry potter", "dinosaur", "unicorn", "sonic", "paw patrol", "mermaid", "disney",
          "hello kitty", "minecraft", "space", "football"]  # fmt: skip
FIRST = [
    "byron",
    "maya",
    "leo",
    "nina",
    "otis",
    "ruby",
    "felix",
    "ada",
    "hugo",
    "iris",
    "jonah",
    "lena",
    "milo",
    "nora",
    "oscar",
    "piper",
    "quinn",
    "rosa",
    "silas",
    "tess",
    "violet",
]
LAST = ["cage", "hart", "vale", "monroe", "fox", "reyes", "stone", "wilde", "quill", "marsh",
        "cole", "dunn", "frost", "lane", "price", "king", "gold", "rivers", "banks"]  # fmt: skip
LINES = ["nova", "aero", "pulse", "vista", "orbit", "flux", "apex", "halo", "echo", "terra",
         "zephyr", "glide", "summit", "volt", "prism", "atlas"]  # fmt: skip
LINE_SUFFIX = ["2", "3", "5", "7", "11", "x2", "pro", "plus", "max", "s9", "mini", "ultra", "lite",
               "se", "air", "one"]  # fmt: skip
BRAND_A = [
    "zor",
    "pel",
    "quin",
    "vex",
    "lum",
    "mar",
    "tal",
    "nor",
    "kiv",
    "bra",
    "sol",
    "dex",
    "fen",
    "gal",
    "hol",
    "jun",
    "kor",
    "lyr",
    "mox",
    "nov",
    "ori",
    "pax",
    "rav",
    "sev",
    "tor",
    "ulm",
    "vin",
    "wex",
    "yar",
    "zen",
    "cal",
    "dru",
    "el",
    "fro",
    "gry",
    "ist",
]
BRAND_B = ["ak", "ora", "ix", "on", "ella", "ity", "ex", "ara", "um", "io", "en", "ar", "is",
           "o", "ent", "ova", "ic", "eon", "ana", "ux"]  # fmt: skip
# brands that are also other entities' words (product lines, themes, colors, sizes)
AMBIGUOUS_BRANDS = ["nova", "apex", "halo", "summit", "atlas", "echo", "disney", "marvel",
                    "pokemon", "gold star", "king", "royal", "classic", "urban", "arctic",
                    "coastal", "polar", "mini", "crystal", "ivory", "copper", "wilde"]  # fmt: skip
BRAND_C = ["home", "sport", "labs", "kids", "audio", "living", "co", "tech", "outdoors",
           "beauty", "pets", "kitchen", "studio"]  # fmt: skip


@dataclass(frozen=True)
class ProductType:
    name: str
    family: str
    category: str
    kind: str  # vocabulary group for modifiers/occasions: electronics, apparel, home, ...
    size: str = "none"
    material: str = "gear"
    complements: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    dept: bool = False
    line: bool = False  # has product lines (product_name) and model numbers
    content: str = ""  # "theme" or "artist": what the content entity is
    aspects: tuple[str, ...] = ()


def _t(
    name: str,
    family: str,
    category: str,
    kind: str,
    size: str,
    material: str,
    complements: str,
    synonyms: str,
    flags: str,
    aspects: str,
) -> ProductType:
    """One row of the type table; list fields are comma-separated strings."""

    def split(x: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in x.split(",") if v.strip())

    flag = set(flags.split())
    content = "artist" if "artist" in flag else "theme" if "theme" in flag else ""
    return ProductType(
        name,
        family,
        category,
        kind,
        size,
        material,
        split(complements),
        split(synonyms),
        "dept" in flag,
        "line" in flag,
        content,
        split(aspects),
    )


_E, _A, _H, _K = "Electronics", "Clothing, Shoes & Jewelry", "Home & Kitchen", "Kitchen & Dining"

# fmt: off
TYPES: tuple[ProductType, ...] = (
    _t("smartphone", "phone", _E, "electronics", "storage", "electronics",
       "phone case, screen protector, phone charger", "cell phone", "line",
       "battery life, camera, screen, speed, build quality"),
    _t("phone case", "phone accessories", _E, "electronics", "none", "gear",
       "screen protector, phone charger", "phone cover", "line theme",
       "grip, fit, protection, build quality"),
    _t("screen protector", "phone accessories", _E, "electronics", "none", "gear", "phone case",
       "tempered glass", "line", "clarity, installation, fit, durability"),
    _t("phone charger", "chargers", _E, "electronics", "length", "gear", "charging cable",
       "wall charger", "line", "charging speed, cable length, build quality"),
    _t("charging cable", "chargers", _E, "electronics", "length", "gear", "phone charger",
       "usb cable", "", "length, durability, speed"),
    _t("laptop", "computers", _E, "electronics", "screen", "electronics",
       "laptop bag, wireless mouse, laptop stand", "notebook computer", "line",
       "battery life, keyboard, screen, speed, fan noise"),
    _t("tablet", "computers", _E, "electronics", "screen", "electronics", "tablet case, stylus pen",
       "tablet computer", "line", "screen, battery life, speed, sound quality"),
    _t("laptop bag", "bags", _E, "gear", "screen", "gear", "laptop", "laptop sleeve", "",
       "padding, zipper, size, straps"),
    _t("tablet case", "tablet accessories", _E, "gear", "screen", "gear", "tablet", "tablet cover",
       "theme", "fit, protection, stand"),
    _t("stylus pen", "tablet accessories", _E, "gear", "none", "gear", "tablet", "", "",
       "precision, battery life, grip"),
    _t("wireless mouse", "computer accessories", _E, "electronics", "none", "gear",
       "mouse pad, laptop", "computer mouse", "line",
       "tracking, battery life, comfort, connectivity"),
    _t("mouse pad", "computer accessories", _E, "gear", "length", "gear", "wireless mouse", "",
       "theme", "surface, size, edges"),
    _t("laptop stand", "computer accessories", _E, "gear", "none", "gear", "laptop", "", "",
       "stability, height, build quality"),
    _t("headphones", "audio", _E, "electronics", "none", "electronics",
       "headphone stand, audio cable", "over ear headphones", "line",
       "battery life, sound quality, build quality, setup, connectivity"),
    _t("earbuds", "audio", _E, "electronics", "none", "electronics", "charging case, ear tips",
       "in ear headphones", "line",
       "battery life, sound quality, build quality, setup, connectivity"),
    _t("bluetooth speaker", "audio", _E, "electronics", "none", "electronics", "audio cable",
       "portable speaker", "line",
       "battery life, sound quality, build quality, setup, connectivity"),
    _t("headphone stand", "audio accessories", _E, "gear", "none", "gear", "headphones", "", "",
       "stability, build quality"),
    _t("audio cable", "audio accessories", _E, "gear", "length", "gear", "headphones", "aux cable",
       "", "length, sound quality"),
    _t("ear tips", "audio accessories", _E, "gear", "apparel", "gear", "earbuds", "", "",
       "fit, comfort"),
    _t("charging case", "audio accessories", _E, "gear", "none", "gear", "earbuds", "", "",
       "battery life, fit"),
    _t("digital camera", "cameras", _E, "electronics", "none", "electronics",
       "camera bag, sd card, tripod", "point and shoot camera", "line",
       "image quality, battery life, zoom, menus"),
    _t("camera bag", "camera accessories", _E, "gear", "none", "gear", "digital camera", "", "",
       "padding, size, straps"),
    _t("sd card", "camera accessories", _E, "electronics", "storage", "gear", "digital camera",
       "memory card", "line", "speed, reliability, capacity"),
    _t("tripod", "camera accessories", _E, "gear", "length", "gear", "digital camera", "", "",
       "stability, height, weight"),
    _t("smart tv", "tv", _E, "electronics", "screen", "electronics",
       "tv wall mount, hdmi cable, soundbar", "television", "line",
       "picture quality, sound quality, apps, setup, remote"),
    _t("tv wall mount", "tv accessories", _E, "gear", "screen", "gear", "smart tv", "", "",
       "installation, sturdiness, tilt"),
    _t("hdmi cable", "tv accessories", _E, "gear", "length", "gear", "smart tv", "", "",
       "length, picture quality"),
    _t("soundbar", "audio", _E, "electronics", "none", "electronics", "smart tv", "", "line",
       "sound quality, bass, setup, remote"),
    _t("running shoes", "shoes", _A, "shoe", "shoe", "shoe", "shoe laces, insoles, socks",
       "sneakers, athletic shoes", "dept line", "fit, comfort, support, sizing, durability"),
    _t("boots", "shoes", _A, "shoe", "shoe", "shoe", "socks, insoles", "ankle boots", "dept",
       "fit, comfort, sizing, waterproofing"),
    _t("sandals", "shoes", _A, "shoe", "shoe", "shoe", "socks", "slides", "dept",
       "fit, comfort, straps, sizing"),
    _t("shoe laces", "shoe accessories", _A, "apparel", "length", "textile", "running shoes", "",
       "", "length, durability"),
    _t("insoles", "shoe accessories", _A, "shoe", "shoe", "gear", "running shoes", "", "",
       "support, comfort, sizing"),
    _t("socks", "socks", _A, "apparel", "apparel", "apparel", "running shoes", "", "dept theme",
       "fit, fabric, comfort, durability"),
    _t("t-shirt", "tops", _A, "apparel", "apparel", "apparel", "jeans", "tee, shirt", "dept theme",
       "fit, fabric, comfort, sizing, stitching"),
    _t("hoodie", "tops", _A, "apparel", "apparel", "apparel", "jeans", "sweatshirt, pullover",
       "dept theme", "fit, fabric, comfort, sizing, stitching"),
    _t("dress", "dresses", _A, "apparel", "apparel", "apparel", "necklace, earrings", "maxi dress",
       "dept", "fit, fabric, comfort, sizing, stitching"),
    _t("jacket", "outerwear", _A, "apparel", "apparel", "apparel", "scarf", "coat", "dept",
       "warmth, fit, fabric, comfort, sizing"),
    _t("scarf", "accessories", _A, "apparel", "none", "apparel", "jacket", "", "",
       "softness, warmth, color"),
    _t("jeans", "bottoms", _A, "apparel", "apparel", "apparel", "belt", "denim pants", "dept",
       "fit, fabric, comfort, sizing, stitching"),
    _t("leggings", "bottoms", _A, "apparel", "apparel", "apparel", "t-shirt", "yoga pants",
       "dept theme", "fit, fabric, comfort, sizing, stitching"),
    _t("belt", "accessories", _A, "apparel", "apparel", "shoe", "jeans", "", "dept",
       "buckle, length, leather"),
    _t("necklace", "jewelry", _A, "gear", "length", "jewelry", "jewelry box, earrings", "pendant",
       "dept", "chain, clasp, shine, size"),
    _t("earrings", "jewelry", _A, "gear", "none", "jewelry", "jewelry box, necklace", "studs",
       "dept", "comfort, shine, size, backs"),
    _t("jewelry box", "jewelry storage", _A, "home", "none", "textile", "necklace",
       "jewelry organizer", "", "compartments, lining, size"),
    _t("duvet cover", "bedding", _H, "home", "bed", "textile", "pillowcase, duvet insert",
       "comforter cover", "theme", "softness, color, durability, washing, size"),
    _t("sheet set", "bedding", _H, "home", "bed", "textile", "pillowcase, mattress protector",
       "bed sheets", "", "softness, color, durability, washing, size"),
    _t("pillowcase", "bedding accessories", _H, "home", "bed", "textile", "sheet set",
       "pillow cover", "theme", "softness, color, durability, washing, size"),
    _t("duvet insert", "bedding accessories", _H, "home", "bed", "textile", "duvet cover",
       "comforter", "", "warmth, fill, size"),
    _t("mattress protector", "bedding accessories", _H, "home", "bed", "textile", "sheet set", "",
       "", "noise, fit, waterproofing"),
    _t("curtains", "window", _H, "home", "length", "textile", "curtain rod", "drapes", "theme",
       "light blocking, color, length"),
    _t("curtain rod", "window accessories", _H, "home", "length", "kitchen", "curtains", "", "",
       "sturdiness, installation, length"),
    _t("area rug", "rugs", _H, "home", "length", "textile", "rug pad", "rug", "",
       "softness, color, shedding, size"),
    _t("rug pad", "rug accessories", _H, "home", "length", "gear", "area rug", "", "",
       "grip, thickness, size"),
    _t("table lamp", "lighting", _H, "home", "length", "kitchen", "light bulb", "desk lamp", "",
       "brightness, build quality, switch"),
    _t("light bulb", "lighting accessories", _H, "electronics", "none", "gear", "table lamp",
       "led bulb", "", "brightness, color, lifespan"),
    _t("coffee maker", "coffee", _K, "kitchen", "volume", "kitchen",
       "coffee filters, coffee grinder", "coffee machine", "line",
       "taste, brewing speed, ease of cleaning, carafe"),
    _t("coffee grinder", "coffee", _K, "kitchen", "volume", "kitchen", "coffee maker", "", "line",
       "grind consistency, noise, cleaning"),
    _t("coffee filters", "coffee accessories", _K, "kitchen", "none", "paper", "coffee maker", "",
       "", "fit, strength"),
    _t("frying pan", "cookware", _K, "kitchen", "length", "kitchen", "spatula, pan lid", "skillet",
       "", "ease of cleaning, durability, heat distribution, handle, size"),
    _t("spatula", "utensils", _K, "kitchen", "none", "kitchen", "frying pan", "turner", "",
       "handle, flexibility, heat resistance"),
    _t("pan lid", "cookware accessories", _K, "kitchen", "length", "kitchen", "frying pan", "", "",
       "fit, handle, steam vent"),
    _t("water bottle", "drinkware", _K, "kitchen", "volume", "kitchen", "bottle brush", "tumbler",
       "theme", "insulation, leaks, lid, size"),
    _t("bottle brush", "cleaning", _K, "kitchen", "none", "gear", "water bottle", "", "",
       "bristles, handle"),
    _t("knife set", "cutlery", _K, "kitchen", "none", "kitchen", "cutting board, knife sharpener",
       "kitchen knives", "", "sharpness, handle, block, balance"),
    _t("cutting board", "cutlery", _K, "kitchen", "length", "kitchen", "knife set",
       "chopping board", "", "size, durability, ease of cleaning"),
    _t("knife sharpener", "cutlery", _K, "kitchen", "none", "kitchen", "knife set", "", "",
       "sharpness, ease of use"),
    _t("shampoo", "hair care", "Beauty", "beauty", "volume", "paper", "conditioner, hair brush",
       "hair wash", "", "scent, lather, softness, price"),
    _t("conditioner", "hair care", "Beauty", "beauty", "volume", "paper", "shampoo", "", "",
       "scent, softness, detangling"),
    _t("hair brush", "hair tools", "Beauty", "beauty", "none", "gear", "shampoo",
       "detangling brush", "", "bristles, handle, detangling"),
    _t("lipstick", "makeup", "Beauty", "beauty", "none", "paper", "lip liner, makeup remover",
       "lip color", "", "color, staying power, texture"),
    _t("lip liner", "makeup", "Beauty", "beauty", "none", "paper", "lipstick", "", "",
       "color, staying power"),
    _t("makeup remover", "skin care", "Beauty", "beauty", "volume", "paper", "lipstick", "", "",
       "gentleness, scent, effectiveness"),
    _t("toothpaste", "oral care", "Health", "beauty", "volume", "paper", "toothbrush, dental floss",
       "", "", "taste, whitening, freshness"),
    _t("toothbrush", "oral care", "Health", "beauty", "none", "gear", "toothpaste, dental floss",
       "electric toothbrush", "line", "bristles, battery life, handle"),
    _t("dental floss", "oral care", "Health", "beauty", "length", "gear", "toothbrush", "", "",
       "strength, taste"),
    _t("dog collar", "pet gear", "Pet Supplies", "pet", "apparel", "gear", "dog leash, dog tag",
       "pet collar", "theme", "buckle, fit, durability"),
    _t("dog leash", "pet gear", "Pet Supplies", "pet", "length", "gear", "dog collar", "lead", "",
       "handle, clip, length"),
    _t("dog tag", "pet gear", "Pet Supplies", "pet", "none", "jewelry", "dog collar", "", "",
       "engraving, durability"),
    _t("dog bed", "pet beds", "Pet Supplies", "pet", "apparel", "textile", "dog blanket", "", "",
       "comfort, washing, size"),
    _t("dog blanket", "pet beds", "Pet Supplies", "pet", "length", "textile", "dog bed", "", "",
       "softness, washing"),
    _t("cat litter", "cat care", "Pet Supplies", "pet", "weight", "paper",
       "litter box, litter scoop", "", "", "odor control, dust, clumping"),
    _t("litter box", "cat care", "Pet Supplies", "pet", "none", "gear", "cat litter, litter scoop",
       "", "", "size, cleaning, odor control"),
    _t("litter scoop", "cat care", "Pet Supplies", "pet", "none", "gear", "cat litter", "", "",
       "sturdiness, slots"),
    _t("yoga mat", "fitness", "Sports & Outdoors", "sports", "none", "gear",
       "yoga block, yoga strap", "exercise mat", "theme", "grip, thickness, smell, durability"),
    _t("yoga block", "fitness", "Sports & Outdoors", "sports", "none", "gear", "yoga mat", "", "",
       "grip, firmness"),
    _t("yoga strap", "fitness", "Sports & Outdoors", "sports", "length", "textile", "yoga mat", "",
       "", "length, buckle"),
    _t("dumbbells", "fitness", "Sports & Outdoors", "sports", "weight", "kitchen", "weight rack",
       "hand weights", "", "grip, weight, durability"),
    _t("weight rack", "fitness", "Sports & Outdoors", "sports", "none", "kitchen", "dumbbells", "",
       "", "sturdiness, assembly"),
    _t("tennis racket", "racket sports", "Sports & Outdoors", "sports", "none", "gear",
       "tennis balls, racket grip", "", "line", "balance, grip, weight"),
    _t("tennis balls", "racket sports", "Sports & Outdoors", "sports", "none", "gear",
       "tennis racket", "", "", "bounce, durability"),
    _t("racket grip", "racket sports", "Sports & Outdoors", "sports", "none", "gear",
       "tennis racket", "overgrip", "", "tackiness, durability"),
    _t("bike helmet", "cycling", "Sports & Outdoors", "sports", "apparel", "gear",
       "bike lock, bike light", "bicycle helmet", "dept", "fit, ventilation, straps"),
    _t("bike lock", "cycling", "Sports & Outdoors", "sports", "length", "kitchen", "bike helmet",
       "", "", "security, weight, keys"),
    _t("bike light", "cycling", "Sports & Outdoors", "electronics", "none", "gear", "bike helmet",
       "", "", "brightness, battery life, mount"),
    _t("jigsaw puzzle", "puzzles", "Toys & Games", "toys", "none", "paper", "puzzle mat", "puzzle",
       "theme", "piece fit, image quality, difficulty"),
    _t("puzzle mat", "puzzles", "Toys & Games", "toys", "none", "textile", "jigsaw puzzle", "", "",
       "size, storage"),
    _t("building set", "building toys", "Toys & Games", "toys", "none", "gear", "storage bin",
       "building blocks", "dept line theme", "instructions, piece quality, fun"),
    _t("storage bin", "storage", _H, "home", "volume", "gear", "building set", "storage box", "",
       "lid, sturdiness, size"),
    _t("action figure", "figures", "Toys & Games", "toys", "length", "gear", "display case",
       "figurine", "line theme", "detail, articulation, paint"),
    _t("display case", "figures", "Toys & Games", "home", "length", "gear", "action figure", "", "",
       "clarity, assembly, size"),
    _t("plush toy", "soft toys", "Toys & Games", "toys", "length", "textile", "display case",
       "stuffed animal", "dept theme", "softness, stitching, size"),
    _t("vinyl record", "music", "Music", "media", "none", "paper", "record player, record sleeves",
       "lp", "artist", "sound quality, pressing, packaging"),
    _t("record player", "music players", _E, "electronics", "none", "electronics", "vinyl record",
       "turntable", "line", "sound quality, speakers, setup"),
    _t("record sleeves", "music accessories", "Music", "media", "none", "paper", "vinyl record", "",
       "", "fit, thickness"),
    _t("cd", "music", "Music", "media", "none", "paper", "cd case", "album", "artist",
       "sound quality, packaging, songs"),
    _t("cd case", "music accessories", "Music", "media", "none", "gear", "cd", "", "",
       "hinges, clarity"),
    _t("novel", "books", "Books", "media", "none", "paper", "bookmark", "book", "artist",
       "story, characters, ending, print quality"),
    _t("bookmark", "book accessories", "Books", "media", "none", "jewelry", "novel", "", "",
       "design, durability"),
    _t("poster", "wall art", _H, "home", "length", "paper", "poster frame", "wall art", "theme",
       "print quality, colors, packaging"),
    _t("poster frame", "wall art", _H, "home", "length", "kitchen", "poster", "picture frame", "",
       "glass, hanging, size"),
)
# fmt: on
TYPE_BY_NAME = {t.name: t for t in TYPES}
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
