"""Emulated WeChat Pay API v3 (直连商户, mini-program JSAPI), mounted at ``/sandbox/wechatpay``: stands for
``https://api.mch.weixin.qq.com``. Wire contract: ``docs/wechat-wire.md`` section 2; guide and scope:
``docs/sandbox.md`` ("WeChat Pay v3"). An independent implementation from the documents (it does not
use ``wechatpayv3``), so that a mistake cannot hide by being made on both sides.

One module per concern:

- :mod:`~sandbox.wechatpay.api`: the merchant API (orders, query, close, refunds), its request
  signatures and error shape, and the blueprint;
- :mod:`~sandbox.wechatpay.notify`: the notification dispatcher (signing, encrypting, sending on
  WeChat's retry schedule, redelivering);
- :mod:`~sandbox.wechatpay.bill`: the trade bill and its download;
- :mod:`~sandbox.wechatpay.control`: its control routes (``/sandbox/control/pay/...``): merchants,
  settings, the user paying, redeliveries;
- :mod:`~sandbox.wechatpay.core`: what they share (the platform key, ids, errors, how an order reads);
  :mod:`~sandbox.wechatpay.schema`: its tables and seed.
"""

from sandbox.wechatpay.api import create_wechatpay_blueprint
from sandbox.wechatpay.control import add_control_routes
from sandbox.wechatpay.core import Platform, WeChatPay, encrypt_resource
from sandbox.wechatpay.notify import Dispatcher
from sandbox.wechatpay.schema import with_schema

__all__ = ["Dispatcher", "Platform", "WeChatPay", "add_control_routes", "create_wechatpay_blueprint",
           "encrypt_resource", "with_schema"]
