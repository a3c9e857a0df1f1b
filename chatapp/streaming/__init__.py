"""The streaming engine: one answer from the model to the client, and everything that keeps it going.

- `relay`: one model call's stream, a backend's events in, `text/event-stream` frames out.
- `registry`: this process's live streams, and the sweeper that cuts stalled clients.
- `admission`: whether a new stream may start, here and across processes.
- `resumable`: answers that outlive their connection, written to an `answer_log` readers follow.
- `recording`: a stored conversation's answer kept while it streams.
- `delivery`: whether a client still takes the bytes written to it.
- `greenlets`: the gevent plumbing.
- `coordination/`: what the processes share (nothing on one process, Redis on several).

Nothing here knows Flask: the views build requests and responses around it.
"""
