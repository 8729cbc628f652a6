"""Sound families of sfx clips, for a class-conditional sfx prior: keyword rules on paths.

``family_of(pkg, src, name)`` returns one of ``FAMILIES``. Walkers that know the answer by
construction (rendered instruments, drum kits) set ``Item.family`` themselves; this is the rest.
The first matching rule wins, so specific rules (packages, folders) come before generic words.
"""

from __future__ import annotations

import re

FAMILIES = (
    "animal",
    "vehicle",
    "impact",
    "instrument",
    "drum",
    "household",
    "water",
    "voice",
    "ui",
    "other",
)
_PKG_RULES: list[tuple[str, str]] = [  # on "<package>:<path>": what the layout says
    (
        "drum",
        r"sonic-pi.*/(drum_|bd_|sn_|elec_(?!beep|blip|bell|chime|ping|plip|tick|twip|pop)"
        r"|tabla_|loop_(amen|breakbeat|compus|garzul|mika|perc|tabla|safari)|glitch_perc)",
    ),
    ("instrument", r"sonic-pi.*/(guit_|bass_|ambi_(choir|piano|glass)|elec_(bell|chime))"),
    ("drum", r"lmms-common:.*/(drums|beats|latin|bassloops)/"),
    ("instrument", r"lmms-common:.*/(instruments|basses|stringsnpads)/"),
    ("instrument", r"hedgewars-data:.*/sounds/\d[a-g]\.ogg$"),
    ("ui", r"0ad-data:.*audio/interface/|wesnoth/1\.16/sounds/|[:/]ui\.ocg/"),
    ("impact", r"0ad-data:.*audio/(attack|actor/singlesteps|actor/human/movement)/"),
    ("animal", r"0ad-data:.*audio/actor/(fauna|mounted)/"),
    ("household", r"0ad-data:.*audio/(resource|actor/gate)/|0ad-data:.*ambient/building/"),
    ("other", r"0ad-data:.*ambient/dayscape/"),  # mixed daytime backgrounds
    ("instrument", r"tuxpaint-stamps-default:.*/music/"),
    ("ui", r"widelands-data:.*/(military|message|lobby)"),
    ("water", r"waterfall|/rain|river"),
    ("instrument", r"horn-signals/|/trumpet|fanfare|klavir|piano|guitar|violin|flute|harp\b"),
]
_WORD_RULES: list[tuple[str, str]] = [
    (
        "animal",
        r"animal|fauna|critter|bird|\bdog|\bcat\b|cow\b|cow_|cattle|horse|sheep|pig\b|pig_"
        r"|chicken|rooster|duck|frog|owl\b|wolf|lion|elephant|\bele\d|eleattack|elewalk|camel|goat"
        r"|bull|donkey|\box_"
        r"|moose|stag|boar|coyote|cricket|\bbees?\b|\bbee\d|beehive|mosquito|/bat\.ocg|chippie|wipf|mooq|puka|monster"
        r"|growl|snake|eagle|dragon|crow\b|crow\.|gull|parrot|monkey|whale|fish|\bsow\b|wild_sow"
        r"|neigh|\bmoo|bark|meow|howl|chirp|tweet|roar|insect|zap\.ocg|snort|golem|\bbat-|gryphon"
        r"|tusker|drake-",
    ),
    (
        "voice",
        r"skin\.ocg/|clonk\.ocg/action\.ocg/(breathing|munch)|human/death|scream|laugh"
        r"|ihaha|smich|burp|cough|sneeze|groan|grunt|yell|shout|cheer|applause|wail|ugg\."
        r"|(human|dwarf|orc|elf|goblin|ogre|troll|wose|lich|naga|mermen|skeleton|zombie)-"
        r"(small-|big-|old-|female-)?(die|hit)|hell_(ow|ugh|ooff)|breath",
    ),
    (
        "vehicle",
        r"vehicle|\bcar\b|engine|motor|train|plane|aircraft|airship|helicopter|\bship|boat"
        r"|truck|\btram|\bbus\b|siren|tractor|lorry|wheels|ornithopter|\borni_|carpet|catapult_walk"
        r"|rocket|jet|ufo|tardis|propeller|boompack|submarine|car_|horn\b",
    ),
    (
        "drum",
        r"drum|tabla|bongo|conga|cymbal|snare|hihat|hi-hat|\btom\d|timpani|gong|tambourine"
        r"|cowbell|handclap|cajon|djembe|castanet",
    ),
    (
        "impact",
        r"explo|blast|boom|bomb|grenade|\bgun|gun\b|gunsh|shot|shoot|rifle|musket|cannon"
        r"|bullet|arrow|\bbow|sword|\baxe|blade|clang|hit|punch|kick|smash|crash|impact|break"
        r"|shatter|thud|bang|bump|step|foot|land|fall|slam|knock|crack|attack|weapon|melee|spear"
        r"|javelin|shield|whip|throw|swing|swoosh|swash|woosh|mortar|mine(?!r)|siege|destruct"
        r"|collapse|rockfall|earthquake|catapult|molotov|missile|laser|drop|dump|thump|roll|knife"
        r"|\bdig|miss\b|-miss|strike|sling|crossbow|flail|club|mace|hatchet|dagger|staff|magic",
    ),
    (
        "water",
        r"water|splash|liquid|rain|wave|ocean|\bsea\b|seashore|river|stream|drip|droplet|bubles"
        r"|bubbl|bubble|swim|dive|diving|wind(?!ow)|storm|thunder|lightning|weather|fire|flame"
        r"|burn|torch|lava|boil|sizzle|steam|ice\b|ice_|snow|gust|blowout|pshsh|fizzle|spark"
        r"|fuse|smoke|geyser|inflame",
    ),
    (
        "ui",
        r"/ui/|\bgui|menu|button|click|klick|beep|bleep|blip|blup|twip|plip|select|confirm"
        r"|error|notif|alert|alarm|message|chime|ding\b|ding\.|\bpop\b|pop\.|tick|interface|cursor"
        r"|countdown|denied|cash|coin|skip|placed|lobby|fanfare|cleared|bell",
    ),
    (
        "household",
        r"door|gate|chest|hinge|creak|lock|key|switch|clock|phone|kitchen|\bcup"
        r"|glass|plate|chair|drawer|zip|paper|\bsaw|sawing|hammer|drill|tool|smith|anvil|mill"
        r"|mining|pick|chop|wood|\bcut|construct|build|repair|machine|mechan|pump|gear|\bfan"
        r"|elevator|furnace|forge|spin|weav|loom|scythe|farm|grind|stone|typewriter|keyboard"
        r"|printer|vacuum|wash|sew|scissors|toilet|flush|shower|tap\b|pracka|budik|motor|till"
        r"|sharpen|sickle|harvest|fisher|net\b|lumber|forag|gather|connect|spray|rope|bucket"
        r"|grab|shutter|enter\d|space\d|metal|printer|robot|glitch|vinyl|scratch|ping",
    ),
]
_PKG = [(f, re.compile(rx, re.I)) for f, rx in _PKG_RULES]
_WORDS = [(f, re.compile(rx, re.I)) for f, rx in _WORD_RULES]
# Tux Paint stamp categories and other folder names that settle what the words do not.
_FOLDER = {"animals": "animal", "vehicles": "vehicle", "household": "household",
           "sports": "impact", "town": "household", "military": "impact",
           "hobbies": "household", "food": "household"}  # fmt: skip


def family_of(pkg: str, src: str) -> str:
    """Family of one sfx clip from its package and path inside the package."""
    src = src.lower()
    for fam, rx in _PKG:
        if rx.search(f"{pkg}:{src}"):
            return fam
    # the words: the last three path parts (not the package's own folder names), and of an
    # OpenTTD sound only its title, not the credits of the freesound originals
    words = "/".join(re.sub(r"\.cat#\d+: ", "/", src).split(". original ")[0].split("/")[-3:])
    for fam, rx in _WORDS:
        if rx.search(words):
            return fam
    for part in src.lower().split("/"):
        if part in _FOLDER:
            return _FOLDER[part]
    return "other"
