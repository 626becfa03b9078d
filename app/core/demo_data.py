"""Made-up but plausible marketplace data for `manage.py seed_demo`.

Everything takes a `random.Random`, so a seed gives the same data every time.
"""

DEMO_PASSWORD = "demo-pass-123"

# Condition words that suit anything second-hand.
GENERAL_ADJECTIVES = [
    "Vintage", "Like-new", "Barely used", "Well-loved", "Rare", "Classic", "Mint-condition",
    "Boxed", "Pre-owned", "Limited-edition", "Lightly used", "Retro",
]

# Per category: extra adjectives, (brand-like word, noun) pairs that go together,
# price range in minor units, and sentences that describe such a thing.
CATEGORIES = {
    "electronics": {
        "adjectives": ["Refurbished", "Open-box", "Factory-reset", "Fully working", "Portable"],
        "things": [
            ("Leica", "camera"), ("ThinkPad", "laptop"), ("Sony", "headphones"), ("Nikon", "lens"),
            ("Kindle", "e-reader"), ("Bose", "speaker"), ("Pixel", "phone"), ("iPad", "tablet"),
            ("Raspberry Pi", "starter kit"), ("GoPro", "action camera"), ("Nintendo", "console"),
            ("Dell", "monitor"), ("Logitech", "keyboard"), ("Garmin", "GPS watch"),
        ],
        "price": (1500, 150000),
        "details": [
            "Battery holds a full day's charge.",
            "Comes with the original charger and cable.",
            "Screen has no scratches or dead pixels.",
            "Tested and fully working; reset to factory settings.",
            "Firmware updated to the latest version.",
        ],
    },
    "books": {
        "adjectives": ["Hardcover", "Paperback", "First-edition", "Signed", "Annotated"],
        "things": [
            ("Dune", "novel"), ("Tolkien", "box set"), ("Penguin Classics", "anthology"),
            ("Murakami", "novel"), ("Le Guin", "collection"), ("Knuth", "textbook"),
            ("Ottolenghi", "cookbook"), ("Asterix", "comic album"), ("Pratchett", "Discworld novel"),
            ("Lonely Planet", "travel guide"), ("Agatha Christie", "mystery"), ("Sapiens", "history book"),
        ],
        "price": (100, 12000),
        "details": [
            "Spine is intact and the pages are clean.",
            "No highlighting or notes inside.",
            "Dust jacket included, with light shelf wear.",
            "A great read that deserves a new shelf.",
            "From a smoke-free home library.",
        ],
    },
    "home": {
        "adjectives": ["Mid-century", "Scandinavian", "Minimalist", "Spotless", "Space-saving"],
        "things": [
            ("IKEA", "bookshelf"), ("Le Creuset", "dutch oven"), ("Dyson", "vacuum"),
            ("Eames", "lounge chair"), ("Smeg", "kettle"), ("Moccamaster", "coffee maker"),
            ("Muuto", "pendant lamp"), ("KitchenAid", "stand mixer"), ("Bialetti", "moka pot"),
            ("Kilim", "rug"), ("Hay", "side table"), ("Nespresso", "machine"),
        ],
        "price": (800, 90000),
        "details": [
            "Fits nicely in a small flat.",
            "All parts included; assembly instructions too.",
            "A few signs of use but nothing that affects how it works.",
            "Moving house, so it has to go.",
            "Cleaned and ready to use.",
        ],
    },
    "garden": {
        "adjectives": ["Weatherproof", "Heavy-duty", "Sturdy", "Rust-free", "Season-old"],
        "things": [
            ("Fiskars", "pruning shears"), ("Bosch", "hedge trimmer"), ("Weber", "grill"),
            ("Gardena", "hose reel"), ("Husqvarna", "lawn mower"), ("Haws", "watering can"),
            ("Greenhouse", "planter set"), ("Kadai", "fire bowl"), ("Sneeboer", "trowel"),
            ("Stihl", "leaf blower"), ("Cedar", "raised bed"), ("Rattan", "garden chair"),
        ],
        "price": (500, 80000),
        "details": [
            "Used for one season only.",
            "Stored in a dry shed over winter.",
            "Blades were sharpened last month.",
            "Perfect for a balcony or a small garden.",
            "Starts first time, every time.",
        ],
    },
    "toys": {
        "adjectives": ["Complete", "Collectible", "Sealed", "Educational", "Kid-tested"],
        "things": [
            ("LEGO", "Technic set"), ("Playmobil", "castle"), ("Brio", "train set"),
            ("Hot Wheels", "track"), ("Catan", "board game"), ("Rubik's", "cube"),
            ("Schleich", "animal set"), ("Barbie", "dreamhouse"), ("Meccano", "kit"),
            ("Carcassonne", "board game"), ("Nerf", "blaster"), ("Duplo", "box"),
        ],
        "price": (300, 40000),
        "details": [
            "All pieces counted and present.",
            "Original box and instructions included.",
            "Kept away from pets and smoke.",
            "Hours of fun for kids and grown-ups alike.",
            "Our children have outgrown it.",
        ],
    },
    "sports": {
        "adjectives": ["Lightweight", "Pro-level", "Freshly serviced", "Trail-tested", "Beginner-friendly"],
        "things": [
            ("Brompton", "folding bike"), ("Wilson", "tennis racket"), ("Garmin", "bike computer"),
            ("Salomon", "trail shoes"), ("Decathlon", "tent"), ("Yonex", "badminton set"),
            ("Bauer", "hockey skates"), ("Osprey", "backpack"), ("Concept2", "rowing machine"),
            ("Burton", "snowboard"), ("Black Diamond", "climbing harness"), ("Spalding", "basketball"),
        ],
        "price": (700, 150000),
        "details": [
            "Ridden or worn only a handful of times.",
            "Recently serviced and in great shape.",
            "Fits most adults; see photos for the size.",
            "Selling because I switched sports.",
            "Ideal for beginners and weekend warriors.",
        ],
    },
    "fashion": {
        "adjectives": ["Designer", "Timeless", "Gently worn", "Authentic", "Seasonal"],
        "things": [
            ("Levi's", "denim jacket"), ("Barbour", "wax jacket"), ("Dr. Martens", "boots"),
            ("Ray-Ban", "sunglasses"), ("Patagonia", "fleece"), ("Converse", "sneakers"),
            ("Hermès", "silk scarf"), ("Uniqlo", "down vest"), ("Fjällräven", "backpack"),
            ("Seiko", "wristwatch"), ("Birkenstock", "sandals"), ("Acne", "sweater"),
        ],
        "price": (500, 120000),
        "details": [
            "Size runs true to the label.",
            "Dry-cleaned and stored carefully.",
            "No stains, holes or loose threads.",
            "A timeless piece that goes with everything.",
            "Worn to one wedding and never again.",
        ],
    },
    "music": {
        "adjectives": ["Studio-quality", "Restored", "Gig-ready", "Analog", "Collector's"],
        "things": [
            ("Fender", "guitar"), ("Yamaha", "keyboard"), ("Technics", "turntable"),
            ("Pink Floyd", "vinyl LP"), ("Roland", "drum machine"), ("Marshall", "amp"),
            ("Shure", "microphone"), ("Korg", "synthesizer"), ("Hohner", "harmonica"),
            ("Miles Davis", "record"), ("Gibson", "ukulele"), ("Audio-Technica", "headphones"),
        ],
        "price": (500, 150000),
        "details": [
            "Sounds fantastic; no crackle or hum.",
            "Comes with a padded case.",
            "Plays well straight out of the box.",
            "A few cosmetic marks, none on the playing surface.",
            "Kept in a temperature-controlled room.",
        ],
    },
    "art": {
        "adjectives": ["Original", "Signed", "One-of-a-kind", "Handmade", "Limited-run"],
        "things": [
            ("Watercolour", "landscape"), ("Hokusai", "print"), ("Bauhaus", "poster"),
            ("Linocut", "portrait"), ("Ceramic", "vase"), ("Oil", "still life"),
            ("Screen-printed", "tote"), ("Bronze", "sculpture"), ("Risograph", "zine"),
            ("Charcoal", "sketch"), ("Mondrian", "reproduction"), ("Stoneware", "bowl"),
        ],
        "price": (1000, 150000),
        "details": [
            "Brings colour to any wall.",
            "Certificate of authenticity included.",
            "Framed behind UV-protective glass.",
            "Made by a local artist.",
            "Will be packed carefully for shipping.",
        ],
    },
    "tools": {
        "adjectives": ["Professional", "Heavy-duty", "Precision", "Workshop-kept", "Compact"],
        "things": [
            ("Makita", "drill"), ("DeWalt", "circular saw"), ("Stanley", "tool box"),
            ("Bosch", "laser level"), ("Wera", "screwdriver set"), ("Festool", "sander"),
            ("Knipex", "pliers"), ("Milwaukee", "impact driver"), ("Dremel", "rotary tool"),
            ("Leatherman", "multitool"), ("Ryobi", "jigsaw"), ("Fluke", "multimeter"),
        ],
        "price": (500, 90000),
        "details": [
            "Comes with two batteries and a charger.",
            "Bits and blades included.",
            "Used for a single renovation project.",
            "Runs smoothly, no play in the chuck.",
            "Stored indoors, no rust.",
        ],
    },
}

CATEGORY_NAMES = sorted(CATEGORIES)

CLOSING_SENTENCES = [
    "Pick-up in town or shipping at cost.",
    "Happy to answer questions.",
    "Price is firm.",
    "Open to reasonable offers.",
    "Ships within two days.",
]

MIN_PRICE, MAX_PRICE = 100, 150000  # 1.00 to 1500.00
MIN_DEPOSIT, MAX_DEPOSIT = 5000, 200000  # 50.00 to 2000.00


def demo_item(rng):
    """(title, description, category, price in minor units) for one random item."""
    category = rng.choice(CATEGORY_NAMES)
    spec = CATEGORIES[category]
    adjective = rng.choice(spec["adjectives"] if rng.random() < 0.6 else GENERAL_ADJECTIVES)
    brand, noun = rng.choice(spec["things"])
    title = f"{adjective} {brand} {noun}"
    sentences = rng.sample(spec["details"], rng.randint(1, 2))
    if rng.random() < 0.5:
        sentences.append(rng.choice(CLOSING_SENTENCES))
    description = " ".join(sentences)
    return title, description, category, demo_price(rng, *spec["price"])


def demo_price(rng, low, high):
    """A price between low and high (minor units), skewed towards the cheap end, rounded like a person would."""
    low, high = max(low, MIN_PRICE), min(high, MAX_PRICE)
    value = int(low * (high / low) ** rng.random())  # log-uniform
    if value >= 2000:  # from 20.00 on, whole amounts or .99 (45.00, 44.99)
        value = value // 100 * 100 - (1 if rng.random() < 0.3 else 0)
    return min(max(value, low), high)


def demo_deposit(rng):
    return rng.randint(MIN_DEPOSIT, MAX_DEPOSIT)


# --------------------------------------------------------------------------- photos

# A colour per category (RGB), for the demo photos: a card with the category and the title, made with Pillow.
CARD_COLOURS = [(46, 94, 170), (170, 72, 46), (46, 140, 90), (130, 60, 150), (190, 140, 30), (40, 130, 140),
                (150, 50, 90), (90, 100, 110)]
CARD_SIZE = (800, 600)


def _font(size):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font (needs FreeType)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _wrapped(draw, text, font, width):
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line] if line else lines


def demo_photo_bytes(title, category):
    """A JPEG of a coloured card with the item's category and title: demo photos made here, downloaded from
    nowhere. The same title and category give the same picture."""
    import io

    from PIL import Image, ImageDraw

    colour = CARD_COLOURS[sum(map(ord, category or "other")) % len(CARD_COLOURS)]
    image = Image.new("RGB", CARD_SIZE, colour)
    draw = ImageDraw.Draw(image)
    width, height = CARD_SIZE
    draw.rounded_rectangle((40, 40, width - 40, height - 40), radius=28, outline=(255, 255, 255), width=6)
    draw.text((80, 80), (category or "other").upper(), fill=(255, 255, 255), font=_font(40))
    font = _font(64)
    y = 200
    for line in _wrapped(draw, title, font, width - 160)[:4]:
        draw.text((80, y), line, fill=(255, 255, 255), font=font)
        y += 80
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()
