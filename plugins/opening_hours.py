"""Opening hours: a function tool implemented by a plugin, answering from a small local file.

Declare the tool in the profile and load the plugin (``profiles/tools.yaml`` does both)::

    session:
      tools:
        - type: function
          name: get_opening_hours
          description: Today's opening hours of a museum or monument.
          parameters:
            type: object
            properties: {place: {type: string}}
            required: [place]
    plugins: [plugins/opening_hours.py]

The hours are read from ``opening_hours.yaml`` next to this file. A place that is not there gets
an answer listing the places that are, so the model can ask the user again.
"""

from pathlib import Path

import yaml

from voicepipe import hookimpl

HOURS = yaml.safe_load((Path(__file__).with_name("opening_hours.yaml")).read_text(encoding="utf-8"))


@hookimpl
def voicepipe_tools_provided():
    return ["get_opening_hours"]


@hookimpl
def voicepipe_tool_call(name, arguments):
    if name != "get_opening_hours":
        return None  # another plugin's tool
    wanted = arguments["place"].strip().lower()
    for place, hours in HOURS.items():
        if wanted in place.lower() or place.lower() in wanted:
            return {"place": place, **hours}
    return {"error": f"no opening hours known for {arguments['place']!r}", "known_places": sorted(HOURS)}
