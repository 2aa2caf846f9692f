"""Vocabulary of the synthetic product world: sizes, materials, colors, modifiers,
departments, origins, eras, themes, name and brand parts.

Plain data tables used by :mod:`ecomlm.data.catalog`.
"""

from __future__ import annotations

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
