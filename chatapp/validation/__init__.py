"""Request bodies -> typed requests, or the `ApiError` that says what is wrong.

`chat`: the stateless `POST /api/chat`; `conversations`: the stored conversations'
endpoints; `fields`: what they share. Nothing here touches Flask's request, the
network or the store, so a rejected request changes nothing.
"""

from .chat_request import parse_chat_request
from .fields import require_json_content_type

__all__ = ["parse_chat_request", "require_json_content_type"]
