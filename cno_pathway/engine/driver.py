"""A thin driver over durable_rules' C extension (`durable_rules_engine`), without its Python
host layer (`durable.engine`).

The host layer turns every fact into JSON with json.dumps, parses every match the engine
reports back with json.loads, wraps it in a Closure and calls an action, which then asserts
the next fact through the same round trip: about four fifths of an evaluation's time was spent
there, and none in the engine. Here a fact goes in as the JSON text the caller assembled, and
what comes back is read only for the one thing we need, the name of the rule that matched.
Actions are ours to run after the engine has listed the matches (engine/durable.py).
"""

from __future__ import annotations

import json

import durable_rules_engine as _engine

from ..errors import EngineError

_NOT_HANDLED = 1        # assert_fact's status when no rule's pattern took the fact
_OBSERVED = 2           # ...when the session already holds a fact with that id: it is ignored


class Ruleset:
    """One compiled durable_rules ruleset (a C handle)."""

    def __init__(self, name: str, definition: dict | str):
        # the definition holds only patterns and priorities (no callables): JSON as durable
        # reads it, or that JSON already written
        self.name = name
        text = definition if isinstance(definition, str) else json.dumps(definition,
                                                                          ensure_ascii=False)
        self.handle = _engine.create_ruleset(name, text)

    def matches(self, fact_json: str) -> list[str]:
        """Assert one fact (JSON text with a "sid") and return the names of the rules whose
        actions the engine then starts, in the engine's order, completing each in turn."""
        handle = self.handle
        status, state = _engine.assert_fact(handle, fact_json)
        if status == _NOT_HANDLED:
            return []
        if status == _OBSERVED:      # silently matching nothing would drop the patient's rules
            raise EngineError("the engine session already holds a fact with this id")
        started = _engine.start_action_for_state(handle, state)
        if started is None:
            return []
        names = []
        messages = started[1]
        complete = _engine.complete_and_start_action
        while messages is not None:
            end = messages.find('"', 2)         # _rule_name, inline: once per match
            name = messages[2:end]
            names.append(name if "\\" not in name and messages.startswith('{"')
                         else _rule_name(messages))
            messages = complete(handle, state)
        return names

    def delete_state(self, sid: str) -> None:
        _engine.delete_state(self.handle, sid)

    def close(self) -> None:
        if self.handle is not None:
            _engine.delete_ruleset(self.handle)
            self.handle = None


def _rule_name(messages: str) -> str:
    """The rule name of a started action: the first key of `{"name":{"m":{...}}}`. Our rule
    names need no JSON escapes (ids are [A-Z0-9-], ours add '$'); anything else is parsed."""
    end = messages.find('"', 2)
    name = messages[2:end]
    if "\\" in name or not messages.startswith('{"'):
        name = next(iter(json.loads(messages)))
    return name
