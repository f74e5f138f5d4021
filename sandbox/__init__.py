"""Local emulators of the outside parties, as real HTTP servers: WeChat's mini-program server API
(``/sandbox/wechat``), a bank-card network (element check and transfers, ``/sandbox/cardnet``) and a
control API
(``/sandbox/control``). Shares no code with the rest of the project.

Run standalone with ``python -m sandbox [--host 127.0.0.1] [--port 8100]``.
"""

from sandbox.config import SandboxConfig
from sandbox.server import create_app, create_blueprint

__all__ = ["SandboxConfig", "create_app", "create_blueprint"]
