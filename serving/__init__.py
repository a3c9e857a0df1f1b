"""gunicorn's side of chatapp: the worker class and the limits it puts on connections.

Kept outside the `chatapp` package on purpose: gunicorn's master imports the worker class
before any worker exists, and the master must not import chatapp (gunicorn.conf.py says why).
Nothing here imports chatapp, Flask or the openai SDK.
"""
