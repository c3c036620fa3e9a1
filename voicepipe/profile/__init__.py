"""Session profiles: YAML files describing a voice session, validated before anything connects.

    from voicepipe.profile import load_profile, build_request_session
    profile = load_profile("profiles/ava.yaml", ["session.voice.name=en-US-Emma:DragonHDLatestNeural"])
    session = build_request_session(profile)   # azure.ai.voicelive.models.RequestSession

Loading (:mod:`.load`) reads the YAML with line numbers (:mod:`.yamlload`), merges ``extends:``
parents (:mod:`.merge`), resolves ``${VAR}`` (:mod:`.interpolate`), applies ``--set`` overrides and
checks everything against the schema (:mod:`.schema`, written in :mod:`.spec`). :mod:`.session`
turns ``session:`` into the SDK model; the SDK is imported only then.
"""

from voicepipe.profile.load import load_profile
from voicepipe.profile.model import Profile
from voicepipe.profile.session import build_request_session, session_update_payload

__all__ = ["Profile", "load_profile", "build_request_session", "session_update_payload"]
