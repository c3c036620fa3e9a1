"""Opening hours: a function tool written as a typed Python function, answering from a small file.

Load the file as a plugin (``profiles/tools.yaml`` does)::

    plugins: [plugins/opening_hours.py]

``@tool`` declares ``get_opening_hours`` to the session itself: the name, the description (the
docstring's first paragraph) and the parameters' JSON schema (from the type hints and the ``Args:``
section), and runs it when the model calls it. The hours are read from ``opening_hours.yaml`` next
to this file. A place that is not there gets an answer listing the places that are, so the model
can ask the user again.
"""

from pathlib import Path

import yaml

from voicepipe import tool

HOURS = yaml.safe_load((Path(__file__).with_name("opening_hours.yaml")).read_text(encoding="utf-8"))


@tool
def get_opening_hours(place: str) -> dict:
    """Today's opening hours of a museum or monument.

    Args:
        place: The museum or monument, e.g. Louvre.
    """
    wanted = place.strip().lower()
    for known, hours in HOURS.items():
        if wanted in known.lower() or known.lower() in wanted:
            return {"place": known, **hours}
    return {"error": f"no opening hours known for {place!r}", "known_places": sorted(HOURS)}
