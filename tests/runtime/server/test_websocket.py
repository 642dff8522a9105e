"""The sync socket adapter's mapping of errors to close frames."""

from __future__ import annotations

from owlat.runtime.errors import OperatorError
from owlat.runtime.server.websocket import MAX_CLOSE_REASON_BYTES, close_frame
from owlat.runtime.sync.protocol import ProtocolError
from owlat.runtime.sync.worker import ClientTimestampAhead, TooManyConcurrentRequests


def test_errors_map_to_close_codes_with_a_code_prefixed_reason() -> None:
    assert close_frame(ProtocolError("bad")) == (1008, "BadClientMessage: bad")
    assert close_frame(TooManyConcurrentRequests("busy"))[0] == 1013
    assert close_frame(ClientTimestampAhead())[0] == 1008
    assert close_frame(OperatorError("disk"))[0] == 1011


def test_long_reasons_fit_in_a_close_frame() -> None:
    code, reason = close_frame(ProtocolError("é" * 200))
    assert code == 1008
    assert len(reason.encode()) <= MAX_CLOSE_REASON_BYTES and reason.endswith("...")
