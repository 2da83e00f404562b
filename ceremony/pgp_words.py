"""pgp_words: the PGP word list (Juola and Zimmermann, 1995) as data, one word per byte value.

A byte at an even position is spoken with EVEN_WORDS, at an odd position with ODD_WORDS.
Data only, never logic: the lists must stay reviewable against the published table line by line.
"""

from __future__ import annotations

# Two-syllable words, index = byte value, for bytes at even positions (0, 2, 4, ...).
EVEN_WORDS: tuple[str, ...] = (
    # 0x00
    "aardvark", "absurd", "accrue", "acme", "adrift", "adult", "afflict", "ahead",
    "aimless", "Algol", "allow", "alone", "ammo", "ancient", "apple", "artist",
    # 0x10
    "assume", "Athens", "atlas", "Aztec", "baboon", "backfield", "backward", "banjo",
    "beaming", "bedlamp", "beehive", "beeswax", "befriend", "Belfast", "berserk", "billiard",
    # 0x20
    "bison", "blackjack", "blockade", "blowtorch", "bluebird", "bombast", "bookshelf", "brackish",
    "breadline", "breakup", "brickyard", "briefcase", "Burbank", "button", "buzzard", "cement",
    # 0x30
    "chairlift", "chatter", "checkup", "chisel", "choking", "chopper", "Christmas", "clamshell",
    "classic", "classroom", "cleanup", "clockwork", "cobra", "commence", "concert", "cowbell",
    # 0x40
    "crackdown", "cranky", "crowfoot", "crucial", "crumpled", "crusade", "cubic", "dashboard",
    "deadbolt", "deckhand", "dogsled", "dragnet", "drainage", "dreadful", "drifter", "dropper",
    # 0x50
    "drumbeat", "drunken", "Dupont", "dwelling", "eating", "edict", "egghead", "eightball",
    "endorse", "endow", "enlist", "erase", "escape", "exceed", "eyeglass", "eyetooth",
    # 0x60
    "facial", "fallout", "flagpole", "flatfoot", "flytrap", "fracture", "framework", "freedom",
    "frighten", "gazelle", "Geiger", "glitter", "glucose", "goggles", "goldfish", "gremlin",
    # 0x70
    "guidance", "hamlet", "highchair", "hockey", "indoors", "indulge", "inverse", "involve",
    "island", "jawbone", "keyboard", "kickoff", "kiwi", "klaxon", "locale", "lockup",
    # 0x80
    "merit", "minnow", "miser", "Mohawk", "mural", "music", "necklace", "Neptune",
    "newborn", "nightbird", "Oakland", "obtuse", "offload", "optic", "orca", "payday",
    # 0x90
    "peachy", "pheasant", "physique", "playhouse", "Pluto", "preclude", "prefer", "preshrunk",
    "printer", "prowler", "pupil", "puppy", "python", "quadrant", "quiver", "quota",
    # 0xA0
    "ragtime", "ratchet", "rebirth", "reform", "regain", "reindeer", "rematch", "repay",
    "retouch", "revenge", "reward", "rhythm", "ribcage", "ringbolt", "robust", "rocker",
    # 0xB0
    "ruffled", "sailboat", "sawdust", "scallion", "scenic", "scorecard", "Scotland", "seabird",
    "select", "sentence", "shadow", "shamrock", "showgirl", "skullcap", "skydive", "slingshot",
    # 0xC0
    "slowdown", "snapline", "snapshot", "snowcap", "snowslide", "solo", "southward", "soybean",
    "spaniel", "spearhead", "spellbind", "spheroid", "spigot", "spindle", "spyglass", "stagehand",
    # 0xD0
    "stagnate", "stairway", "standard", "stapler", "steamship", "sterling", "stockman", "stopwatch",
    "stormy", "sugar", "surmount", "suspense", "sweatband", "swelter", "tactics", "talon",
    # 0xE0
    "tapeworm", "tempest", "tiger", "tissue", "tonic", "topmost", "tracker", "transit",
    "trauma", "treadmill", "Trojan", "trouble", "tumor", "tunnel", "tycoon", "uncut",
    # 0xF0
    "unearth", "unwind", "uproot", "upset", "upshot", "vapor", "village", "virus",
    "Vulcan", "waffle", "wallet", "watchword", "wayside", "willow", "woodlark", "Zulu",
)  # fmt: skip

# Three-syllable words, index = byte value, for bytes at odd positions (1, 3, 5, ...).
ODD_WORDS: tuple[str, ...] = (
    # 0x00
    "adroitness", "adviser", "aftermath", "aggregate", "alkali", "almighty", "amulet", "amusement",
    "antenna", "applicant", "Apollo", "armistice", "article", "asteroid", "Atlantic", "atmosphere",
    # 0x10
    "autopsy", "Babylon", "backwater", "barbecue", "belowground", "bifocals", "bodyguard",
    "bookseller", "borderline", "bottomless", "Bradbury", "bravado", "Brazilian", "breakaway",
    "Burlington", "businessman",
    # 0x20
    "butterfat", "Camelot", "candidate", "cannonball", "Capricorn", "caravan", "caretaker",
    "celebrate", "cellulose", "certify", "chambermaid", "Cherokee", "Chicago", "clergyman",
    "coherence", "combustion",
    # 0x30
    "commando", "company", "component", "concurrent", "confidence", "conformist", "congregate",
    "consensus", "consulting", "corporate", "corrosion", "councilman", "crossover", "crucifix",
    "cumbersome", "customer",
    # 0x40
    "Dakota", "decadence", "December", "decimal", "designing", "detector", "detergent",
    "determine", "dictator", "dinosaur", "direction", "disable", "disbelief", "disruptive",
    "distortion", "document",
    # 0x50
    "embezzle", "enchanting", "enrollment", "enterprise", "equation", "equipment", "escapade",
    "Eskimo", "everyday", "examine", "existence", "exodus", "fascinate", "filament", "finicky",
    "forever",
    # 0x60
    "fortitude", "frequency", "gadgetry", "Galveston", "getaway", "glossary", "gossamer",
    "graduate", "gravity", "guitarist", "hamburger", "Hamilton", "handiwork", "hazardous",
    "headwaters", "hemisphere",
    # 0x70
    "hesitate", "hideaway", "holiness", "hurricane", "hydraulic", "impartial", "impetus",
    "inception", "indigo", "inertia", "infancy", "inferno", "informant", "insincere", "insurgent",
    "integrate",
    # 0x80
    "intention", "inventive", "Istanbul", "Jamaica", "Jupiter", "leprosy", "letterhead", "liberty",
    "maritime", "matchmaker", "maverick", "Medusa", "megaton", "microscope", "microwave",
    "midsummer",
    # 0x90
    "millionaire", "miracle", "misnomer", "molasses", "molecule", "Montana", "monument",
    "mosquito", "narrative", "nebula", "newsletter", "Norwegian", "October", "Ohio", "onlooker",
    "opulent",
    # 0xA0
    "Orlando", "outfielder", "Pacific", "pandemic", "Pandora", "paperweight", "paragon",
    "paragraph", "paramount", "passenger", "pedigree", "Pegasus", "penetrate", "perceptive",
    "performance", "pharmacy",
    # 0xB0
    "phonetic", "photograph", "pioneer", "pocketful", "politeness", "positive", "potato",
    "processor", "provincial", "proximate", "puberty", "publisher", "pyramid", "quantity",
    "racketeer", "rebellion",
    # 0xC0
    "recipe", "recover", "repellent", "replica", "reproduce", "resistor", "responsive",
    "retraction", "retrieval", "retrospect", "revenue", "revival", "revolver", "sandalwood",
    "sardonic", "Saturday",
    # 0xD0
    "savagery", "scavenger", "sensation", "sociable", "souvenir", "specialist", "speculate",
    "stethoscope", "stupendous", "supportive", "surrender", "suspicious", "sympathy",
    "tambourine", "telephone", "therapist",
    # 0xE0
    "tobacco", "tolerance", "tomorrow", "torpedo", "tradition", "travesty", "trombonist",
    "truncated", "typewriter", "ultimate", "undaunted", "underfoot", "unicorn", "unify",
    "universe", "unravel",
    # 0xF0
    "upcoming", "vacancy", "vagabond", "vertigo", "Virginia", "visitor", "vocalist", "voyager",
    "warranty", "Waterloo", "whimsical", "Wichita", "Wilmington", "Wyoming", "yesteryear",
    "Yucatan",
)  # fmt: skip
