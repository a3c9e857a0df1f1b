"""Request bodies -> typed requests, or the `ApiError` that says what is wrong.

`chat_request`: the stateless `POST /api/chat`; `conversation_requests`: the stored
conversations' endpoints; `fields`: what they share. The views hand in the raw body
and the settings: nothing here reads Flask's request or calls the network or the
store (it borrows the store's `UNSET` marker for a field a change leaves alone), so
a rejected request changes nothing.
"""

from .chat_request import parse_chat_request
from .fields import require_json_content_type

__all__ = ["parse_chat_request", "require_json_content_type"]
