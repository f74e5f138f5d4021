"""WeChat clients: the mini-program server API (our async httpx client)."""

from integrations.wechat.miniprogram import MiniProgramClient, TokenStore, WeChatAPIError, WeChatUnavailable

__all__ = ["MiniProgramClient", "TokenStore", "WeChatAPIError", "WeChatUnavailable"]
